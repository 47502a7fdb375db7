"""pcn: phase collapse networks (Guth, Zarka, Mallat, ICLR 2022) as a library.

Subpackages, lowest layer first (a module imports only from its own layer or below;
tests/test_layout.py checks it): ``pcn.files``, ``pcn.names`` (every name params.yaml can choose)
and ``pcn.schema`` (leaves), ``pcn.nn`` (the networks, usable alone), ``pcn.data``, ``pcn.train``,
``pcn.analysis``, ``pcn.pipeline`` (the glue from params to models and MLflow), ``pcn.cli`` (the
``pcn`` command). The library never reads params.yaml, the environment or the command line, and
changes nothing in the process: stages/ do that and pass typed arguments in.
"""

__version__ = "0.1.0"
