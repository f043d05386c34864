"""The network IR (layers, networks, their checks and .nnir text form) and the property IR
(netpatch properties and VNN-LIB).  It imports nothing else of the project."""
