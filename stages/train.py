"""Stage `train@<variant>-<seed>`: train one model variant with one seed (CPU, one GPU, or DDP under torchrun).

Four parts: :func:`setup` (data, model, optimizer), :func:`resume` (the checkpoint, if its
resume key matches), :func:`train_epochs` (after every epoch: the checkpoint, then the
tracking calls) and :func:`write_outputs`. The resume key covers the training params, the
code this stage imports (its packages) and the data card; a checkpoint of a
finished run (epoch = epochs) goes straight to writing the outputs, and is kept afterwards
(without optimizer state) so that outputs lost after training are rewritten without
retraining.
"""

from __future__ import annotations

from process import prepare_stage

prepare_stage(__file__)  # before torch and pcn: stages/process.py

import argparse
import os
import subprocess
import sys
from dataclasses import asdict

import torch

from pcn.data.errors import DataError
from pcn.files import torch_save, write_csv, write_json
from pcn.pipeline.tracking import flatten
from pcn.train import checkpoint
from pcn.train.checkpoint import CheckpointError, key_differences
from pcn.train.curves import plot_history
from pcn.train.device import retain_freed_memory, select_device
from pcn.train.distributed import all_gather_objects, barrier, cleanup, init_distributed, torchrun_command
from pcn.train.epoch import NonFiniteError
from pcn.train.loop import Schedule, TrainingState, final_state_dict, fit

from common import (
    DATA_DIR,
    FILTERS_DIR,
    MODELS_DIR,
    code_digest,
    fail,
    fail_on_data_error,
    load_params,
    stage_variant_and_seed,
)
from registry import log_and_register
from run_inputs import dist_info
from tracked import stage_run, tracking_uri
from train_setup import Setup, setup


def parse_args(params) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--variant", help="a key of `models` in params.yaml (default: from DVC's stage name)")
    parser.add_argument("--seed", type=int, help="one of `seeds` in params.yaml (default: from DVC's stage name)")
    args = parser.parse_args()
    args.variant, args.seed = stage_variant_and_seed("train", args.variant, args.seed, params)
    return args


def resume(s: Setup, run) -> TrainingState:
    """The state to start from: the checkpoint's if its resume key matches, else a fresh one."""
    try:
        saved = checkpoint.load(s.checkpoint_path)
    except CheckpointError as exc:
        fail(str(exc))
    if saved is None:
        return TrainingState()
    if saved.get("resume_key") != s.key.value:
        changed = key_differences(saved.get("resume_parts", {}), s.key.parts)
        if s.info.is_main:
            print(
                f"train@{s.run.name}: not resuming {s.checkpoint_path} (changed since: {'; '.join(changed)}); "
                "starting over"
            )
        return TrainingState()
    s.nets.model.load_state_dict(saved["model"])
    state = TrainingState.from_dict(saved["state"])
    if state.epoch < s.run.recipe["epochs"]:
        s.nets.optimizer.load_state_dict(saved["optimizer"])
    rngs = saved["rng"]
    checkpoint.set_rng_state(rngs[s.info.rank] if s.info.rank < len(rngs) else rngs[0])
    previous = saved.get("mlflow_run_id")
    if s.info.is_main:
        done = state.epoch >= s.run.recipe["epochs"]
        print(
            f"train@{s.run.name}: resuming from {s.checkpoint_path} at epoch {state.epoch}"
            + (" (training complete: writing the outputs)" if done else "")
        )
        if previous:
            run.set_tags({"resumed_from": previous})
            mark_interrupted(run, previous)
    return state


def mark_interrupted(run, run_id: str) -> None:
    """An interrupted run (killed without a chance to close itself) still RUNNING becomes KILLED."""
    try:
        if run.client.get_run(run_id).info.status == "RUNNING":
            run.client.set_terminated(run_id, "KILLED")
    except Exception:  # logged to another store, or the store is down: nothing to mark
        pass


def save_checkpoint(
    s: Setup, state: TrainingState, run_id: str | None, rngs: list, with_optimizer: bool = True
) -> None:
    """The resume state (rank 0 writes it; ``rngs`` holds every rank's random state)."""
    checkpoint.save(
        s.checkpoint_path,
        {
            "model": s.nets.model.state_dict(),
            "optimizer": s.nets.optimizer.state_dict() if with_optimizer else {},
            "state": state.as_dict(),
            "rng": rngs,
            "resume_key": s.key.value,
            "resume_parts": s.key.parts,
            "mlflow_run_id": run_id or "",
            "world_size": s.info.world_size,
        },
    )


def epoch_errors(row: dict) -> dict[str, float]:
    """The headline metric of an epoch in the report's unit: ``test_error`` and ``val_error`` in percent."""
    return {f"{split}_error": 100 * (1 - row[f"{split}_acc"]) for split in ("test", "val") if f"{split}_acc" in row}


def train_epochs(s: Setup, state: TrainingState, run) -> TrainingState:
    """The remaining epochs; after each one the checkpoint is written, then the epoch is logged."""
    epochs = s.run.recipe["epochs"]

    def on_epoch_end(state: TrainingState, row: dict) -> None:
        rngs = all_gather_objects(checkpoint.rng_state())  # collective: every rank takes part
        if s.info.is_main:
            save_checkpoint(s, state, run.run_id, rngs)  # first the checkpoint, then the tracking
            run.log_metrics({k: v for k, v in row.items() if k != "epoch"} | epoch_errors(row), step=row["epoch"])
            print(
                f"train@{s.run.name} epoch {row['epoch']}/{epochs}: loss {row['train_loss']:.4f} train acc "
                f"{row['train_acc']:.4f} test acc {row['test_acc']:.4f} ({row['images_per_second']:.0f} img/s)",
                flush=True,
            )
        barrier()

    def progress_bar(epoch: int, steps: int):
        from tqdm import tqdm

        return tqdm(total=steps, desc=f"train@{s.run.name} epoch {epoch + 1}/{epochs}", file=sys.stderr, leave=False)

    progress = progress_bar if s.params.runtime.progress and s.info.is_main else None
    tp = s.params.train
    schedule = Schedule(s.run.recipe["lr"], epochs, s.run.recipe["lr_step"], tp.lr_gamma)
    try:
        return fit(
            s.nets.model,
            s.nets.train_model,
            s.nets.optimizer,
            s.train_batches,
            s.test_batches,
            schedule,
            state,
            s.device,
            select=tp.select,
            amp=tp.amp,
            channels_last=tp.channels_last,
            on_epoch_end=on_epoch_end,
            progress=progress,
            validation_batches=s.validation_batches,
        )
    except DataError as exc:  # an image that cannot be decoded, ...
        fail_on_data_error(f"train@{s.run.name}", exc)
    except NonFiniteError as exc:
        kept = (
            f"the checkpoint of epoch {state.epoch} is kept in {s.checkpoint_path}"
            if state.epoch
            else "no checkpoint was written"
        )
        fail(
            f"train@{s.run.name}: {exc}: training stopped before saving epoch {exc.epoch}; {kept}. Lower "
            f"train.lr (or models.{s.run.variant_name}.lr) or check the data"
        )


def check_unchanged(s: Setup) -> None:
    """params.yaml and the code must still be what the run started with (else dvc.lock would lie)."""
    now = {
        "params": load_params().training_params(s.run.variant_name, s.run.seed),
        "code": code_digest("stages/train.py"),
    }
    changed = key_differences({k: s.key.parts[k] for k in now}, now)
    if changed:
        fail(
            f"train@{s.run.name}: changed while training ran: {'; '.join(changed)}. The trained model follows the "
            f"old values and is kept in {s.checkpoint_path}; run dvc repro again (it resumes if you revert "
            "the change, and retrains otherwise)"
        )


#: Columns of the history that depend on the run (wall time), not on its inputs: kept out of the
#: DVC-tracked history.csv (logged to MLflow, and written to the untracked checkpoints/<run>/run.json).
TIMING_COLUMNS = ("epoch_seconds", "images_per_second")


def training_metrics(s: Setup, state: TrainingState) -> dict:
    """metrics.json: the final (and best-epoch) errors, the validation error, and what was trained."""
    final, best = state.history[-1], state.best
    return {
        "variant": s.run.variant_name,
        "seed": s.run.seed,
        "params_hash": s.params.training_hash(s.run.variant_name, s.run.seed),
        "final_test_acc": final["test_acc"],
        "final_test_error": 100 * (1 - final["test_acc"]),
        "final_test_top5": final["test_top5"],
        "final_train_acc": final["train_acc"],
        "best_test_acc": best["acc"],
        "best_test_error": 100 * (1 - best["acc"]),
        "best_epoch": best["epoch"],
        "final_val_error": 100 * (1 - final["val_acc"]) if "val_acc" in final else None,
        "epochs": s.run.recipe["epochs"],
        "n_parameters": s.nets.n_parameters,
        "selected": s.params.train.select,
        "world_size": s.info.world_size,
    }


def write_outputs(s: Setup, state: TrainingState, run) -> None:
    """metrics.json, history.csv, curves.png, the model file, and the MLflow model (rank 0 only).

    Nothing in them depends on the run itself (no MLflow run id, time or speed), so two executions
    with the same inputs write the same bytes; those facts go to MLflow and to
    ``checkpoints/<variant>-<seed>/run.json`` (outside DVC and git)."""
    check_unchanged(s)
    seconds = sum(r["epoch_seconds"] for r in state.history)
    images = sum(r["images_per_second"] * r["epoch_seconds"] for r in state.history)
    metrics = training_metrics(s, state)
    write_json(s.out_dir / "metrics.json", metrics)
    write_csv(
        s.out_dir / "history.csv", [{k: v for k, v in r.items() if k not in TIMING_COLUMNS} for r in state.history]
    )
    facts = {
        "mlflow_run_id": run.run_id or "",
        "train_seconds": seconds,
        "images_per_second": images / seconds if seconds else None,
    }
    write_json(s.checkpoint_path.parent / "run.json", facts)
    plot_history(state.history, s.out_dir / "curves.png", f"train@{s.run.name}")
    weights = final_state_dict(s.nets.model, state, s.params.train.select)
    torch_save(
        MODELS_DIR / s.run.name / "model.pt",
        {
            "state_dict": weights,
            "variant": asdict(s.run.variant),
            "network": asdict(s.params.network),
            "filters": asdict(s.params.filters),
            "seed": s.run.seed,
            "card": {k: s.card[k] for k in ("name", "channels", "image_size", "num_classes")},
            "params_hash": metrics["params_hash"],
            "training_params": s.key.parts["params"],
            "resume_key": s.key.value,
        },
    )
    # kept without the optimizer state: a finished run is never trained again
    save_checkpoint(s, state, run.run_id, [checkpoint.rng_state()], with_optimizer=False)
    run.log_metrics(  # test_error: per epoch, above; its last step is the final model's
        {
            "best_test_error": metrics["best_test_error"],
            **({"images_per_second": facts["images_per_second"]} if facts["images_per_second"] else {}),
        }
    )
    for name in ("metrics.json", "history.csv", "curves.png"):
        run.log_artifact(s.out_dir / name)
    if s.params.runtime.log_models:
        log_and_register(
            run,
            s.nets.model,
            weights,
            s.card,
            s.test_batches,
            s.run.variant_name,
            s.run.variant,
            s.run.seed,
            metrics,
            s.key.value,
        )


def log_run_start(s: Setup, state: TrainingState, run) -> None:
    run.log_params(
        flatten(
            {
                "seed": s.run.seed,
                **s.key.parts["params"],
                "recipe": s.run.recipe,
                "world_size": s.info.world_size,
                "n_parameters": s.nets.n_parameters,
                "start_epoch": state.epoch,
            }
        )
    )
    run.log_dataset(
        f"{s.card['name']}",
        s.card["digest"],
        str(DATA_DIR),
        "training",
        {"train": s.card["splits"]["train"], "test": s.card["splits"]["test"]},
    )
    if (FILTERS_DIR / "filters.png").is_file() and state.epoch == 0:
        run.log_artifact(FILTERS_DIR / "filters.png")


def main() -> None:
    params = load_params()
    args = parse_args(params)
    tp = params.train
    info = dist_info()
    if tp.launcher == "torchrun" and "RANK" not in os.environ:
        # the DDP processes run this same stage under torchrun; this process waits for them
        sys.exit(subprocess.call(torchrun_command(tp.nproc, __file__, sys.argv[1:])))
    try:
        device = select_device(tp.device, info.local_rank)
        if device.type == "cpu":
            retain_freed_memory()  # faster CPU steps (bench/RESULTS.md); results unchanged
    except ValueError as exc:
        fail(str(exc))
    init_distributed(info, device.type)
    torch.set_float32_matmul_precision("high")
    try:
        with stage_run(params, "train", args.variant, args.seed, enabled=info.is_main) as run:
            s = setup(params, args, info, device)
            state = resume(s, run)
            if info.is_main:
                log_run_start(s, state, run)
            state = train_epochs(s, state, run)
            if info.is_main:
                write_outputs(s, state, run)
                if run.pending:
                    print(
                        f"warning: {run.pending} MLflow entries could not be sent; replay them with "
                        f"pcn resync --uri {tracking_uri(s.params)} {run.journal}",
                        file=sys.stderr,
                    )
            barrier()
    finally:
        cleanup()


if __name__ == "__main__":
    main()
