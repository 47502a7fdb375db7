"""pcn: phase collapse networks (Guth, Zarka, Mallat, ICLR 2022) as a library.

The library never reads params.yaml, environment-wide MLflow state or the command line:
stages/ do that and pass typed arguments in.
"""
__version__ = "0.1.0"
