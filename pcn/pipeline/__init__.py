"""Glue between the validated params and the library: a model built from params (:mod:`~pcn.pipeline.build`),
a run's data (:mod:`~pcn.pipeline.run_data`), one training run (:mod:`~pcn.pipeline.training`), what a stage's
results follow from (:mod:`~pcn.pipeline.provenance`), and the results read back (:mod:`~pcn.pipeline.results`)."""
