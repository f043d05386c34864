"""The commands: argument parsing and printing only; the work is done by the library packages
(``attacks``, ``evaluation``, ``compiler``, ``backends``, ``frontends``)."""
