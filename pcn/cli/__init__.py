"""The ``pcn`` command: the drivers of the pipeline that are not DVC stages (:mod:`pcn.cli.main`).

This is the command-line layer, the top of the import graph: the only package of ``pcn`` that reads the
command line and the environment, and starts processes. The library below it takes typed arguments.
"""
