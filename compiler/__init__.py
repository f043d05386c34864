"""The compiler: analyses that read networks (``compiler.analysis``), queries that turn a network
and a target into a solver-neutral problem (``compiler.queries``), the problem IR
(``compiler.problem``) and the passes that reduce it (``compiler.passes``)."""
