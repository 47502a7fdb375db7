"""Stage `evaluate@<variant>-<seed>`: test accuracy and per-layer class separation of a trained model.

Layer 0 is the input image; layer j >= 1 is block j (phase-collapse networks) or the stem and the
4 stages (ResNet-18), measured at the places of :mod:`pcn.analysis.views` (before and after the
non-linearity, the block output), flattened and spatially averaged. Training statistics come from the
run's training split (no augmentation), every score from its test split
(:mod:`pcn.analysis.separation`); the fraction of exact zeros of each layer's non-linearity outputs
(:mod:`pcn.analysis.activations`) from the test split. A model trained with other params than the
current params.yaml is refused.
"""

from __future__ import annotations

from process import prepare_stage

prepare_stage(__file__)  # before torch and pcn: stages/process.py

import argparse
import json
import math
from dataclasses import asdict

import torch

from pcn.analysis.activations import zero_fractions
from pcn.analysis.separation import MEASURES, layer_separation
from pcn.analysis.views import layer_views
from pcn.data.batches import DeviceBatches, LoaderBatches
from pcn.data.datasets import IN_MEMORY, read_card
from pcn.data.errors import DataError
from pcn.files import write_csv, write_json
from pcn.pipeline.build import InputSpec, build_model
from pcn.pipeline.tracking import flatten
from pcn.schema import FiltersConfig, NetworkConfig, VariantConfig
from pcn.train.checkpoint import changed_keys
from pcn.train.device import retain_freed_memory, select_device
from pcn.train.epoch import run_test_pass

from common import (
    CHECKPOINTS_DIR,
    DATA_DIR,
    EVAL_DIR,
    MODELS_DIR,
    Provenance,
    fail,
    fail_on_data_error,
    load_params,
    resolve_data_root,
    run_name,
    stage_variant_and_seed,
)
from run_inputs import load_required, run_splits
from tracked import stage_run


def eval_batches(params, card: dict, batch_size: int, device: torch.device, seed: int):
    """Training (for the class statistics) and test batches of the run with ``seed`` (its own splits,
    :func:`run_inputs.run_splits`), in order, without augmentation."""
    if card["name"] in IN_MEMORY:
        norm = card["normalization"]
        run = run_splits(params, DATA_DIR, card, seed)
        splits = [run["train"], run["test"]]
        return [
            DeviceBatches(
                s.images,
                s.labels,
                norm["mean"],
                norm["std"],
                batch_size,
                device,
                shuffle=False,
                augment=False,
                seed=0,
                pad=False,
            )
            for s in splits
        ]
    from pcn.data.imagenet import default_workers, image_folders, image_loader

    workers = params.runtime.num_workers
    workers = default_workers(1) if workers == "auto" else workers
    return [
        LoaderBatches(
            image_loader(
                ds, batch_size, train=False, seed=0, rank=0, world=1, workers=workers, pin_memory=device.type == "cuda"
            ),
            device,
        )
        for ds in image_folders(resolve_data_root(card["root"]), "none")
    ]


def load_model_file(params, variant: str, seed: int) -> dict:
    """models/<variant>-<seed>/model.pt, refused unless it was trained with the current params."""
    path = MODELS_DIR / run_name(variant, seed) / "model.pt"
    saved = load_required(path, "model file", f"run train@{run_name(variant, seed)} first")
    if saved.get("params_hash") != params.training_hash(variant, seed):
        changed = changed_keys(saved.get("training_params", {}), params.training_params(variant, seed))
        fail(
            f"{path} was trained with other params than params.yaml now holds ({', '.join(changed) or 'unknown'});"
            f" run dvc repro to retrain it"
        )
    return saved


def load_model(params, args, card: dict, device: torch.device, run) -> tuple[torch.nn.Module, str]:
    """The trained model, rebuilt from the configuration saved with it (refused if trained with other params),
    and the params hash it was trained with."""
    saved = load_model_file(params, args.variant, args.seed)
    run.log_params(flatten({"evaluate": vars(params.evaluate), "seed": args.seed, "model": saved["variant"]}))
    facts = CHECKPOINTS_DIR / run_name(args.variant, args.seed) / "run.json"  # untracked: may be absent
    try:
        run.set_tags({"train_run_id": json.loads(facts.read_text()).get("mlflow_run_id", "")})
    except (OSError, ValueError):
        pass
    model = build_model(
        NetworkConfig(**saved["network"]),
        FiltersConfig(**saved["filters"]),
        VariantConfig(**saved["variant"]),
        InputSpec.from_card(card),
    )
    model.load_state_dict(saved["state_dict"])
    return model.to(device).eval(), saved["params_hash"]


def measure(model, params, card: dict, device: torch.device, name: str, seed: int) -> tuple:
    """Test accuracy, the separation measures of every view (layer 0: the input), and the zero fraction of
    every layer's non-linearity outputs (None where not measurable)."""
    ev = params.evaluate
    try:
        train_batches, test_batches = eval_batches(params, card, ev.batch_size, device, seed)
        acc = run_test_pass(model, test_batches.epoch(0), device)
        rows = layer_separation(
            lambda images: layer_views(model, images),
            train_batches.epoch(0),
            test_batches.epoch(0),
            card["num_classes"],
            device,
            ev.probe_dim,
            ev.fisher_eps,
            ev.max_train_samples,
        )
        zeros = zero_fractions(model, test_batches.epoch(0), device) or []
    except (FloatingPointError, ValueError) as exc:
        fail(f"evaluate@{name}: {exc}")
    except DataError as exc:  # an image that cannot be decoded, ...
        fail_on_data_error(f"evaluate@{name}", exc)
    n_layers = max(r["layer"] for r in rows)
    zeros = zeros + [None] * (n_layers - len(zeros))
    for r in rows:  # layer j >= 1: zeros[j - 1]
        z = zeros[r["layer"] - 1] if r["place"] == "rho" else None
        r["zero_fraction"] = math.nan if z is None else z
    return acc, rows, zeros


def evaluation_metrics(args, params_hash: str, acc, rows: list[dict], zeros) -> dict:
    """metrics.json: test accuracy, error, top-5 and loss, and the separation measures of the last layer."""
    n_layers = max(r["layer"] for r in rows)
    last = {f"{r['place']}/{r['feature']}": {k: r[k] for k in MEASURES} for r in rows if r["layer"] == n_layers}
    return {
        "variant": args.variant,
        "seed": args.seed,
        "params_hash": params_hash,
        "test_acc": acc.top1,
        "test_error": 100 * (1 - acc.top1),
        "test_top5": acc.top5,
        "test_loss": acc.loss,
        "n_layers": n_layers,
        "last_layer": last,
        "zero_fraction_by_layer": zeros,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--variant", help="a key of `models` in params.yaml (default: from DVC's stage name)")
    parser.add_argument("--seed", type=int, help="the training seed (default: from DVC's stage name)")
    args = parser.parse_args()
    params = load_params()
    args.variant, args.seed = stage_variant_and_seed("evaluate", args.variant, args.seed, params)
    name = run_name(args.variant, args.seed)
    provenance = Provenance(
        f"evaluate@{name}",
        "stages/evaluate.py",
        lambda p: {
            "training": p.training_params(args.variant, args.seed),
            "evaluate": asdict(p.evaluate),
            "device": p.train.device,
        },
        params,
    )
    with stage_run(params, "evaluate", args.variant, args.seed) as run:
        try:
            device = select_device(params.train.device)
            if device.type == "cpu":
                retain_freed_memory()
            card = read_card(DATA_DIR)
        except (ValueError, DataError) as exc:
            fail(str(exc))
        model, params_hash = load_model(params, args, card, device, run)
        run.log_dataset(
            card["name"],
            card["digest"],
            str(DATA_DIR),
            "evaluation",
            {"train": card["splits"]["train"], "test": card["splits"]["test"]},
        )
        acc, rows, zeros = measure(model, params, card, device, name, args.seed)
        out_dir = EVAL_DIR / name
        metrics = evaluation_metrics(args, params_hash, acc, rows, zeros)
        provenance.refuse_if_changed()
        write_json(out_dir / "metrics.json", metrics)
        write_csv(out_dir / "separation.csv", rows)
        run.log_metrics({"test_error": metrics["test_error"], "test_acc": acc.top1, "test_top5": acc.top5})
        for r in rows:
            run.log_metrics({f"layer/{r['place']}/{r['feature']}/{k}": r[k] for k in MEASURES}, step=r["layer"])
        for file in ("metrics.json", "separation.csv"):
            run.log_artifact(out_dir / file)
    probe = [
        round(r["probe_accuracy"], 3) for r in rows if r["place"] in ("input", "block") and r["feature"] == "flatten"
    ]
    print(
        f"evaluate@{name}: test error {metrics['test_error']:.2f}%; linear probe accuracy of the flattened "
        f"input and block outputs {probe}"
    )


if __name__ == "__main__":
    main()
