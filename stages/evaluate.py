"""Stage `evaluate@<variant>`: test accuracy and per-layer class separation of a trained model.

Layer 0 is the input image; layer j >= 1 is the output of block j (phase-collapse
networks) or of the stem and the 4 stages (ResNet-18). Class statistics come from the
training set (no augmentation), NCM accuracy from the test set.
"""
from __future__ import annotations

import argparse
from dataclasses import asdict

import torch
from common import (DATA_DIR, EVAL_DIR, MODELS_DIR, input_spec, load_params, run_tags, select_device,
                    start_tracking, write_csv, write_json)
from torch.utils.data import DataLoader

from pcn.config import FiltersConfig, NetworkConfig, VariantConfig
from pcn.data import DataError, build_datasets, read_card
from pcn.distributed import DistInfo
from pcn.engine import evaluate
from pcn.factory import build_model
from pcn.plots import plot_layer_curves
from pcn.separation import layer_separation
from pcn.tracking import flatten

METRICS = ("ncm_accuracy", "fisher_ratio", "cdnv", "mean_energy_ratio")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--variant", required=True)
    args = parser.parse_args()
    params = load_params()
    params.variant(args.variant)
    ev = params.evaluate
    device = select_device(params.train.device, DistInfo())
    experiment_id = start_tracking(params)
    model_path = MODELS_DIR / args.variant / "model.pt"
    if not model_path.is_file():
        raise SystemExit(f"error: {model_path} is missing; run train@{args.variant} first")
    saved = torch.load(model_path, map_location="cpu", weights_only=False)
    try:
        card = read_card(DATA_DIR)
        train_set, test_set = build_datasets(DATA_DIR, card, "none")
    except DataError as exc:
        raise SystemExit(f"error: {exc}")
    # rebuild the model with the configuration it was trained with
    variant = VariantConfig(**saved["variant"])
    model = build_model(NetworkConfig(**saved["network"]), FiltersConfig(**saved["filters"]), variant,
                        input_spec(card))
    model.load_state_dict(saved["state_dict"])
    model.to(device).eval()

    train_loader = DataLoader(train_set, batch_size=ev.batch_size, shuffle=False, num_workers=params.data.num_workers)
    test_loader = DataLoader(test_set, batch_size=ev.batch_size, shuffle=False, num_workers=params.data.num_workers)
    acc = evaluate(model, test_loader, device)

    def extract(images):
        return [images] + model.layer_features(images)

    rows = layer_separation(extract, train_loader, test_loader, card["num_classes"], ev.feature, device,
                            ev.max_train_samples)
    rows = [{"layer": i, **r} for i, r in enumerate(rows)]
    out_dir = EVAL_DIR / args.variant
    metrics = {"test_acc": acc.top1, "test_error": 100 * (1 - acc.top1), "test_top5": acc.top5,
               "test_loss": acc.loss, "feature": ev.feature, "n_layers": len(rows) - 1,
               "last_layer": {k: rows[-1][k] for k in METRICS}}
    write_json(metrics, out_dir / "metrics.json")
    write_csv(rows, out_dir / "separation.csv")
    for metric in METRICS:
        plot_layer_curves({args.variant: rows}, metric, out_dir / f"{metric}.png",
                          log=metric in ("fisher_ratio", "cdnv"))

    import mlflow
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"evaluate@{args.variant}",
                          tags={**run_tags(params, "evaluate", args.variant),
                                "train_run_id": saved.get("mlflow_run_id") or ""}):
        mlflow.log_params(flatten({"evaluate": asdict(ev), "model": asdict(variant)}))
        mlflow.log_metrics({"test_acc": acc.top1, "test_error": metrics["test_error"], "test_top5": acc.top5})
        for r in rows:
            mlflow.log_metrics({f"layer_{k}": r[k] for k in ("ncm_accuracy", "fisher_ratio", "cdnv",
                                                            "mean_energy_ratio")}, step=r["layer"])
        mlflow.log_artifacts(str(out_dir))
    print(f"evaluate@{args.variant}: test acc {acc.top1:.4f}; NCM accuracy per layer "
          f"{[round(r['ncm_accuracy'], 3) for r in rows]}")


if __name__ == "__main__":
    main()
