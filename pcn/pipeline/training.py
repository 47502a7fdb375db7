"""One training run (a variant with a seed), resumable: what it is built from, its epochs and its outputs.

:func:`setup` builds the run (its data, model, optimizer and **resume key**: the training params, the code the
train stage runs and the data card's digest); :func:`resume` takes the checkpoint if its key matches;
:func:`train_epochs` runs the remaining epochs, writing the checkpoint after every epoch and then logging it;
:func:`write_outputs` writes the results and the model file. A checkpoint of a finished run (epoch = epochs)
goes straight to the outputs and is kept afterwards (without optimizer state), so that outputs lost after
training are rewritten without retraining. Nothing in the outputs depends on the run itself (no MLflow run id,
time or speed), so two executions with the same inputs write the same bytes; those facts go to MLflow and to
the untracked ``checkpoints/<run>/run.json``.

The ``run`` passed around is the stage's MLflow run (:class:`pcn.tracking.runs.StageRun`, or a stand-in that
does nothing): ``log_metrics``, ``log_params``, ``set_tags``, ``log_artifact``, ``log_dataset``, ``client``,
``run_id``.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from pcn.data.datasets import read_card
from pcn.data.errors import DataError
from pcn.files import file_digest, torch_save, write_csv, write_json
from pcn.layout import Workspace, run_name
from pcn.mappings import differences, flatten
from pcn.nn.phase_collapse import count_parameters
from pcn.pipeline.build import InputSpec, build_model
from pcn.pipeline.results import error_percent
from pcn.pipeline.run_data import Batches, RunData, Shard
from pcn.schema import Params, VariantConfig
from pcn.train import checkpoint
from pcn.train.checkpoint import CheckpointError
from pcn.train.curves import plot_history
from pcn.train.distributed import DistInfo, all_gather_objects, barrier
from pcn.train.epoch import NonFiniteError, build_optimizer
from pcn.train.loop import Schedule, TrainingState, final_state_dict, fit


class TrainingError(RuntimeError):
    """The run cannot go on (unreadable data or checkpoint, a non-finite step); the message says what to do."""


@dataclass(frozen=True)
class RunId:
    """Which run this is: a variant of params.yaml's ``models`` with one seed, and its recipe."""

    variant_name: str
    seed: int
    variant: VariantConfig
    recipe: dict  # lr, epochs, lr_step, batch_size (VariantConfig.recipe)

    @property
    def name(self) -> str:  # "<variant>-<seed>"
        return run_name(self.variant_name, self.seed)


@dataclass
class Networks:
    """The model, what the optimizer steps through (DDP / compiled wrapper), and the optimizer."""

    model: torch.nn.Module
    train_model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    n_parameters: int


@dataclass(frozen=True)
class ResumeKey:
    """What the run depends on (``params``, ``code``, ``data``) and its digest, saved with every checkpoint."""

    parts: dict
    value: str


@dataclass
class Setup:
    """Everything a training run needs, built once by :func:`setup`."""

    params: Params
    workspace: Workspace
    run: RunId
    info: DistInfo
    device: torch.device
    card: dict  # data/prepared/card.json
    train_batches: Batches
    test_batches: Batches
    validation_batches: Batches | None  # data.validation_fraction of the training part, or None
    nets: Networks
    key: ResumeKey

    @property
    def checkpoint_path(self) -> Path:
        return self.workspace.checkpoint(self.run.name)

    @property
    def out_dir(self) -> Path:
        return self.workspace.train_dir / self.run.name


def setup(
    params: Params,
    workspace: Workspace,
    variant: str,
    seed: int,
    info: DistInfo,
    device: torch.device,
    provenance: dict,
    loader_workers: int = 0,
    image_root: Path | None = None,
) -> Setup:
    """Build the run. ``provenance``: the training params and the code digest the stage started with (the
    ``params`` and ``code`` parts of the resume key, :class:`pcn.pipeline.provenance.Provenance`)."""
    v = params.variant(variant)
    recipe = v.recipe(params.train)
    shard = Shard(info.rank, info.world_size, loader_workers)
    try:
        card = read_card(workspace.data_dir)
        batch_size = recipe["batch_size"] // info.world_size
        batches = RunData(params, workspace.data_dir, card, device, seed, shard, image_root).training_batches(
            batch_size
        )
    except DataError as exc:
        raise TrainingError(str(exc)) from exc
    torch.manual_seed(seed)  # identical initialization on every rank
    model = build_model(params.network, params.filters, v, InputSpec.from_card(card))
    n_parameters = count_parameters(model)
    model.to(device)
    if params.train.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model, recipe["lr"], params.train.momentum, params.train.weight_decay)
    train_model = model
    if info.enabled:
        train_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[info.local_rank] if device.type == "cuda" else None, broadcast_buffers=False
        )
    if params.train.compile:
        train_model = torch.compile(train_model)
    parts = {**provenance, "data": file_digest(workspace.data_dir / "card.json")}
    return Setup(
        params, workspace, RunId(variant, seed, v, recipe), info, device, card, *batches,
        Networks(model, train_model, optimizer, n_parameters),
        ResumeKey(parts, checkpoint.resume_key(parts)),
    )  # fmt: skip


#: Run tag saying what a train stage's run did, so that runs can be told apart in the UI and by search
#: (``tags.`pcn.work` = 'train'``): ``train`` (from epoch 0), ``resume`` (from an unfinished checkpoint),
#: ``rewrite`` (the checkpoint was complete: no epoch trained, the outputs written again).
WORK_TAG = "pcn.work"


def resume(s: Setup, run) -> TrainingState:
    """The state to start from: the checkpoint's if its resume key matches, else a fresh one; tags the run with
    :data:`WORK_TAG`."""
    state = resumed_state(s, run)
    if s.info.is_main:
        work = "train" if state.epoch == 0 else "rewrite" if state.epoch >= s.run.recipe["epochs"] else "resume"
        run.set_tags({WORK_TAG: work})
    return state


def resumed_state(s: Setup, run) -> TrainingState:
    """:func:`resume`'s state (the checkpoint's, or a fresh one), without the work tag."""
    try:
        saved = checkpoint.load(s.checkpoint_path)
    except CheckpointError as exc:
        raise TrainingError(str(exc)) from exc
    if saved is None:
        return TrainingState()
    if saved.get("resume_key") != s.key.value:
        if s.info.is_main:
            changed = differences(saved.get("resume_parts", {}), s.key.parts)
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
    if s.info.is_main:
        done = state.epoch >= s.run.recipe["epochs"]
        print(
            f"train@{s.run.name}: resuming from {s.checkpoint_path} at epoch {state.epoch}"
            + (" (training complete: writing the outputs)" if done else "")
        )
        previous = saved.get("mlflow_run_id")
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


def save_checkpoint(s: Setup, state: TrainingState, run_id: str | None, rngs: list, with_optimizer=True) -> None:
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
    return {f"{split}_error": error_percent(row[f"{split}_acc"]) for split in ("test", "val") if f"{split}_acc" in row}


def train_epochs(s: Setup, state: TrainingState, run, progress_bars: bool) -> TrainingState:
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

    tp = s.params.train
    try:
        return fit(
            s.nets.model, s.nets.train_model, s.nets.optimizer, s.train_batches, s.test_batches,
            Schedule(s.run.recipe["lr"], epochs, s.run.recipe["lr_step"], tp.lr_gamma), state, s.device,
            select=tp.select, amp=tp.amp, channels_last=tp.channels_last, on_epoch_end=on_epoch_end,
            progress=progress_bar if progress_bars and s.info.is_main else None,
            validation_batches=s.validation_batches,
        )  # fmt: skip
    except DataError as exc:  # an image that cannot be decoded (from a loader worker: its last line names it)
        raise TrainingError(f"train@{s.run.name}: {str(exc).strip().splitlines()[-1]}") from exc
    except NonFiniteError as exc:
        kept = (
            f"the checkpoint of epoch {state.epoch} is kept in {s.checkpoint_path}"
            if state.epoch
            else "no checkpoint was written"
        )
        raise TrainingError(
            f"train@{s.run.name}: {exc}: training stopped before saving epoch {exc.epoch}; {kept}. Lower "
            f"train.lr (or models.{s.run.variant_name}.lr) or check the data"
        ) from exc


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
        "final_test_error": error_percent(final["test_acc"]),
        "final_test_top5": final["test_top5"],
        "final_train_acc": final["train_acc"],
        "best_test_acc": best["acc"],
        "best_test_error": error_percent(best["acc"]),
        "best_epoch": best["epoch"],
        "final_val_error": error_percent(final["val_acc"]) if "val_acc" in final else None,
        "epochs": s.run.recipe["epochs"],
        "n_parameters": s.nets.n_parameters,
        "selected": s.params.train.select,
        "world_size": s.info.world_size,
    }


def write_outputs(s: Setup, state: TrainingState, run) -> tuple[dict, dict]:
    """metrics.json, history.csv, curves.png and the model file (rank 0 only); returns the metrics and the
    weights kept (``train.select``)."""
    seconds = sum(r["epoch_seconds"] for r in state.history)
    images = sum(r["images_per_second"] * r["epoch_seconds"] for r in state.history)
    metrics = training_metrics(s, state)
    write_json(s.out_dir / "metrics.json", metrics)
    write_csv(
        s.out_dir / "history.csv", [{k: v for k, v in r.items() if k not in TIMING_COLUMNS} for r in state.history]
    )
    speed = images / seconds if seconds else None
    write_json(
        s.workspace.run_facts(s.run.name),
        {"mlflow_run_id": run.run_id or "", "train_seconds": seconds, "images_per_second": speed},
    )
    plot_history(state.history, s.out_dir / "curves.png", f"train@{s.run.name}")
    weights = final_state_dict(s.nets.model, state, s.params.train.select)
    torch_save(
        s.workspace.model_file(s.run.name),
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
    run.log_metrics({"best_test_error": metrics["best_test_error"], **({"images_per_second": speed} if speed else {})})
    for name in ("metrics.json", "history.csv", "curves.png"):
        run.log_artifact(s.out_dir / name)
    return metrics, weights


def log_run_start(s: Setup, state: TrainingState, run) -> None:
    """The run's params (flattened), its data set, and the filter-bank figure when the run starts from scratch."""
    facts = {"seed": s.run.seed, **s.key.parts["params"], "recipe": s.run.recipe, "world_size": s.info.world_size}
    run.log_params(
        flatten({**facts, "n_parameters": s.nets.n_parameters, "start_epoch": state.epoch}, lists_as_json=True)
    )
    splits = {"train": s.card["splits"]["train"], "test": s.card["splits"]["test"]}
    run.log_dataset(s.card["name"], s.card["digest"], str(s.workspace.data_dir), "training", splits)
    figure = s.workspace.filters_dir / "filters.png"
    if figure.is_file() and state.epoch == 0:
        run.log_artifact(figure)
