"""Stage `evaluate@<variant>-<seed>`: test accuracy and per-layer class separation of a trained model.

Layer 0 is the input image; layer j >= 1 is block j (phase-collapse networks) or the stem and the
4 stages (ResNet-18), measured at the places of :mod:`pcn.analysis.views` (before and after the
non-linearity, the block output), flattened and spatially averaged. Training statistics come from the
run's training split (no augmentation), every score from its test split
(:mod:`pcn.analysis.separation`); the fraction of exact zeros of each layer's non-linearity outputs
(:mod:`pcn.analysis.activations`) from the test split, all in one pass over it
(:func:`pcn.analysis.evaluation.evaluate_model`). A model trained with other params than the
current params.yaml is refused.
"""

from process_defaults import set_process_defaults

set_process_defaults()  # before torch and pcn: stages/process_defaults.py

import json
from dataclasses import asdict

import torch

from pcn.analysis.evaluation import evaluate_model
from pcn.analysis.separation import MEASURES
from pcn.data.datasets import read_card
from pcn.data.errors import DataError
from pcn.data.imagenet import default_workers
from pcn.data.splits import RESPLITTABLE
from pcn.files import write_csv, write_json
from pcn.layout import run_name
from pcn.mappings import changed_keys, flatten
from pcn.pipeline.build import InputSpec, rebuild_model
from pcn.pipeline.provenance import Provenance, ProvenanceChanged
from pcn.pipeline.results import error_percent
from pcn.pipeline.run_data import RunData, Shard, run_splits
from pcn.train.checkpoint import CheckpointError, load
from pcn.train.device import retain_freed_memory, select_device

from mlflow_run import stage_run
from stage_inputs import fail, load_params, record_params, run_arguments
from workspace import PARAMS_PATH, ROOT, WORKSPACE, resolve_data_root


def load_model_file(params, variant: str, seed: int) -> dict:
    """models/<variant>-<seed>/model.pt, refused unless it was trained with the current params."""
    path = WORKSPACE.model_file(run_name(variant, seed))
    try:
        saved = load(path, "model file")
    except CheckpointError as exc:
        fail(str(exc))
    if saved is None:
        fail(f"{path} is missing; run train@{run_name(variant, seed)} first")
    if saved.get("params_hash") != params.training_hash(variant, seed):
        changed = changed_keys(saved.get("training_params", {}), params.training_params(variant, seed))
        fail(
            f"{path} was trained with other params than params.yaml now holds ({', '.join(changed) or 'unknown'});"
            f" run dvc repro to retrain it"
        )
    return saved


def measure(model, params, card: dict, device: torch.device, seed: int) -> tuple:
    """Test accuracy, the separation measures of every view (layer 0: the input), and the zero fraction of
    every layer's non-linearity outputs (None where not measurable)."""
    ev, workers = params.evaluate, params.runtime.num_workers
    shard = Shard(loader_workers=default_workers(1) if workers == "auto" else workers)
    image_root = resolve_data_root(params.data.imagenet.root) if card["name"] == "imagenet" else None
    data = RunData(params, WORKSPACE.data_dir, card, device, seed, shard, image_root)
    train_batches, test_batches = data.evaluation_batches(ev.batch_size)
    return evaluate_model(
        model,
        train_batches.epoch(0),
        test_batches.epoch(0),
        card["num_classes"],
        device,
        ev.probe_dim,
        ev.fisher_eps,
        ev.max_train_samples,
    )


def resampled_split(params, card: dict, seed: int) -> dict | None:
    """``{"n_train", "n_test"}``: the sizes of the train and test split this seed drew for itself
    (``data.resplit``), which the report's Nadeau-Bengio correction needs (:mod:`pcn.analysis.statistics`);
    None when every seed shares the prepared test split."""
    if not (params.data.resplit and card["name"] in RESPLITTABLE):
        return None
    splits = run_splits(params, WORKSPACE.data_dir, card, seed)
    return {"n_train": len(splits["train"].labels), "n_test": len(splits["test"].labels)}


def evaluation_metrics(args, params_hash: str, acc, rows: list[dict], zeros, split: dict | None) -> dict:
    """metrics.json: test accuracy, error, top-5 and loss, the separation measures of the last layer, and the
    sizes of the seed's own split (:func:`resampled_split`)."""
    n_layers = max(r["layer"] for r in rows)
    last = {f"{r['place']}/{r['feature']}": {k: r[k] for k in MEASURES} for r in rows if r["layer"] == n_layers}
    return {
        "variant": args.variant,
        "seed": args.seed,
        "params_hash": params_hash,
        "test_acc": acc.top1,
        "test_error": error_percent(acc.top1),
        "test_top5": acc.top5,
        "test_loss": acc.loss,
        "n_layers": n_layers,
        "last_layer": last,
        "zero_fraction_by_layer": zeros,
        "resampled_split": split,
    }


def evaluate(params, args, provenance: Provenance, run) -> dict:
    """Measure the trained model, then write metrics.json and separation.csv and log them."""
    name = run_name(args.variant, args.seed)
    try:
        device = select_device(params.train.device)
        if device.type == "cpu":
            retain_freed_memory()
        card = read_card(WORKSPACE.data_dir)
    except (ValueError, DataError) as exc:
        fail(str(exc))
    saved = load_model_file(params, args.variant, args.seed)
    run.log_params(
        flatten({"evaluate": vars(params.evaluate), "seed": args.seed, "model": saved["variant"]}, lists_as_json=True)
    )
    run.set_tags({"device": str(device)})
    try:
        run.set_tags({"train_run_id": json.loads(WORKSPACE.run_facts(name).read_text()).get("mlflow_run_id", "")})
    except (OSError, ValueError):  # untracked: may be absent
        pass
    model = rebuild_model(saved, InputSpec.from_card(card)).to(device)
    splits = {"train": card["splits"]["train"], "test": card["splits"]["test"]}
    run.log_dataset(card["name"], card["digest"], str(WORKSPACE.data_dir), "evaluation", splits)
    try:
        acc, rows, zeros = measure(model, params, card, device, args.seed)
    except (FloatingPointError, ValueError) as exc:
        fail(f"evaluate@{name}: {exc}")
    except DataError as exc:  # an image that cannot be decoded (from a loader worker: its last line names it)
        fail(f"evaluate@{name}: {str(exc).strip().splitlines()[-1]}")
    split = resampled_split(params, card, args.seed)
    metrics = evaluation_metrics(args, saved["params_hash"], acc, rows, zeros, split)
    provenance.refuse_if_changed()
    out_dir = WORKSPACE.eval_dir / name
    write_json(out_dir / "metrics.json", metrics)
    write_csv(out_dir / "separation.csv", rows)
    record_params(out_dir)
    run.log_metrics({"test_error": metrics["test_error"], "test_acc": acc.top1, "test_top5": acc.top5})
    for r in rows:
        run.log_metrics({f"layer/{r['place']}/{r['feature']}/{k}": r[k] for k in MEASURES}, step=r["layer"])
    for file in ("metrics.json", "separation.csv"):
        run.log_artifact(out_dir / file)
    return metrics, rows


def main() -> None:
    params = load_params()
    args = run_arguments("evaluate", params, __doc__)
    provenance = Provenance.take(
        f"evaluate@{run_name(args.variant, args.seed)}", ROOT, "stages/evaluate.py", PARAMS_PATH,
        lambda p: {
            "training": p.training_params(args.variant, args.seed),
            "evaluate": asdict(p.evaluate),
            "device": p.train.device,
        },
        params,
    )  # fmt: skip
    try:
        with stage_run(params, "evaluate", args.variant, args.seed) as run:
            metrics, rows = evaluate(params, args, provenance, run)
        provenance.refuse_if_changed("Its outputs are written but not credited")  # the last call
    except ProvenanceChanged as exc:
        fail(str(exc))
    probe = [
        round(r["probe_accuracy"], 3) for r in rows if r["place"] in ("input", "block") and r["feature"] == "flatten"
    ]
    print(
        f"evaluate@{run_name(args.variant, args.seed)}: test error {metrics['test_error']:.2f}%; linear probe "
        f"accuracy of the flattened input and block outputs {probe}"
    )


if __name__ == "__main__":
    main()
