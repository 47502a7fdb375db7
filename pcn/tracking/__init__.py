"""What the stages send to MLflow: the store (:mod:`~pcn.tracking.store`), each stage's run under its
execution's parent run (:mod:`~pcn.tracking.runs`), the journal of entries kept while the store does not answer
(:mod:`~pcn.tracking.journal`), and the logged and registered models (:mod:`~pcn.tracking.registry`).

Nothing here changes what a stage writes to its DVC outputs, so no stage depends on this package
(:mod:`pcn.pipeline.provenance`): a change here reruns nothing.
"""
