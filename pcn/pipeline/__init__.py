"""Glue between params.yaml and the library: building a model from the validated params
(:mod:`pcn.pipeline.build`) and the MLflow tracking helpers (:mod:`pcn.pipeline.tracking`)."""
