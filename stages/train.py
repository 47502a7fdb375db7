"""Stage `train@<variant>-<seed>`: train one model variant with one seed (CPU, one GPU, or DDP under torchrun).

The run resumes from its checkpoint when the resume key matches (:mod:`pcn.pipeline.training`), writes
``models/<run>/model.pt`` and ``results/train/<run>/``, and logs and registers the model in MLflow. It refuses
to write anything if params.yaml or the code changed while it trained.
"""

from process_defaults import set_process_defaults

set_process_defaults()  # before torch and pcn: stages/process_defaults.py

import os
import subprocess
import sys

import torch

from pcn.data.imagenet import default_workers
from pcn.pipeline import training
from pcn.pipeline.provenance import Provenance, ProvenanceChanged
from pcn.train.device import retain_freed_memory, select_device
from pcn.train.distributed import DistInfo, barrier, cleanup, init_distributed, torchrun_command

from mlflow_run import stage_run, tracking_uri
from stage_inputs import fail, load_params, record_params, run_arguments
from workspace import PARAMS_PATH, ROOT, WORKSPACE, resolve_data_root


def dist_info() -> DistInfo:
    """This process's place in a torchrun launch (rank 0 of 1 without one)."""
    return DistInfo(
        int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))
    )


def train(params, args, info: DistInfo, device: torch.device, provenance: Provenance) -> None:
    with stage_run(params, "train", args.variant, args.seed, enabled=info.is_main) as run:
        workers = params.runtime.num_workers
        s = training.setup(
            params, WORKSPACE, args.variant, args.seed, info, device, provenance.taken,
            loader_workers=default_workers(info.world_size) if workers == "auto" else workers,
            image_root=resolve_data_root(params.data.imagenet.root) if params.data.name == "imagenet" else None,
        )  # fmt: skip
        state = training.resume(s, run)
        if info.is_main:
            training.log_run_start(s, state, run)
            run.set_tags({"device": str(device)})
        state = training.train_epochs(s, state, run, params.runtime.progress)
        if info.is_main:
            provenance.refuse_if_changed(f"The trained model follows the old values and is kept in {s.checkpoint_path}")
            metrics, weights = training.write_outputs(s, state, run)
            record_params(s.out_dir)
            if params.runtime.log_models:
                from pcn.tracking.registry import TrainedRun, log_and_register

                trained = TrainedRun(args.variant, s.run.variant, args.seed, s.card, metrics, s.key.value)
                exp_name = os.environ.get("DVC_EXP_NAME", "")
                log_and_register(run, trained, s.nets.model, weights, s.test_batches, ROOT, exp_name)
            if run.pending:
                print(
                    f"warning: {run.pending} MLflow entries could not be sent; replay them with "
                    f"pcn resync --uri {tracking_uri(params)} {run.journal}",
                    file=sys.stderr,
                )
        barrier()


def main() -> None:
    params = load_params()
    args = run_arguments("train", params, __doc__)
    tp = params.train
    if tp.launcher == "torchrun" and "RANK" not in os.environ:
        # the DDP processes run this same stage under torchrun; this process waits for them
        sys.exit(subprocess.call(torchrun_command(tp.nproc, __file__, sys.argv[1:])))
    info = dist_info()
    provenance = Provenance.take(
        f"train@{args.variant}-{args.seed}", ROOT, "stages/train.py", PARAMS_PATH,
        lambda p: p.training_params(args.variant, args.seed), params,
    )  # fmt: skip
    try:
        device = select_device(tp.device, info.local_rank)
    except ValueError as exc:
        fail(str(exc))
    if device.type == "cpu":
        retain_freed_memory()  # faster CPU steps (bench/RESULTS.md); results unchanged
    init_distributed(info, device.type)
    torch.set_float32_matmul_precision("high")
    try:
        train(params, args, info, device, provenance)
        if info.is_main:  # the last call: params.yaml still holds what the outputs were computed with
            provenance.refuse_if_changed("Its outputs are written but not credited")
    except (training.TrainingError, ProvenanceChanged) as exc:
        fail(str(exc))
    finally:
        cleanup()


if __name__ == "__main__":
    main()
