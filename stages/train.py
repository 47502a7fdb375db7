"""Stage `train@<variant>`: train one model variant (CPU, one GPU, or DDP under torchrun).

Resumable: an atomic checkpoint (model, optimizer, epoch, every rank's RNG states, history,
MLflow run id) is written to checkpoints/<variant>/last.pt after every epoch, outside DVC's
outputs. A rerun with the same stage params resumes from the last complete epoch; the new
MLflow run is tagged ``resumed_from=<previous run id>``. The checkpoint is removed once
the final outputs are written.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from dataclasses import asdict

import torch
import torch.distributed as dist
from common import (CHECKPOINTS_DIR, DATA_DIR, FILTERS_DIR, MODELS_DIR, TRAIN_DIR, dist_info, input_spec,
                    load_params, run_tags, select_device, start_tracking, write_csv, write_json)
from torch.utils.data import DataLoader, DistributedSampler, Subset

from pcn.checkpoint import atomic_save, load_checkpoint, rng_state, set_rng_state
from pcn.data import DataError, build_datasets, read_card
from pcn.distributed import barrier, broadcast_object, cleanup, init_distributed
from pcn.engine import NonFiniteError, build_optimizer, evaluate, step_lr, train_one_epoch
from pcn.factory import build_model
from pcn.model import PhaseCollapseNet, count_parameters
from pcn.plots import plot_history
from pcn.tracking import flatten


def check_filter_bank(model: torch.nn.Module) -> None:
    """The model's filters must be those of the filters stage (guards against a stale bank)."""
    if not isinstance(model, PhaseCollapseNet):
        return
    path = FILTERS_DIR / "filter_bank.pt"
    if not path.is_file():
        raise SystemExit(f"error: {path} is missing; run the filters stage (dvc repro filters)")
    bank = torch.load(path, weights_only=False)["blocks"]
    if len(bank) != len(model.blocks):
        raise SystemExit(f"error: {path} has {len(bank)} blocks, the model {len(model.blocks)}; rerun the filters stage")
    for block, saved in zip(model.blocks, bank):
        if block.wavelet.fourier.shape != saved["fourier"].shape or \
                not torch.allclose(block.wavelet.fourier, saved["fourier"], atol=1e-6):
            raise SystemExit(f"error: filters of block {saved['index']} differ from {path}; rerun the filters stage")


def gather_rng_states() -> list:
    state = rng_state()
    if dist.is_available() and dist.is_initialized():
        states = [None] * dist.get_world_size()
        dist.all_gather_object(states, state)
        return states
    return [state]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--variant", required=True, help="a key of `models` in params.yaml")
    args = parser.parse_args()
    params = load_params()
    variant = params.variant(args.variant)
    tp = params.train
    if tp.launcher == "torchrun" and "RANK" not in os.environ:
        # re-launch this stage under torchrun (one process per GPU, or CPU processes with gloo)
        os.execv(sys.executable, [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                  f"--nproc-per-node={tp.nproc}", __file__, *sys.argv[1:]])
    info = dist_info()
    device = select_device(tp.device, info)
    init_distributed(info, device.type)
    torch.set_float32_matmul_precision("high")

    experiment_id = start_tracking(params) if info.is_main else None
    try:
        card = read_card(DATA_DIR)
        train_set, test_set = build_datasets(DATA_DIR, card, params.data.augment)
    except DataError as exc:
        raise SystemExit(f"error: {exc}")

    torch.manual_seed(params.seed)                      # identical initialization on every rank
    model = build_model(params.network, params.filters, variant, input_spec(card))
    check_filter_bank(model)
    n_params = count_parameters(model)
    model.to(device)
    if tp.channels_last:
        model.to(memory_format=torch.channels_last)
    recipe = variant.recipe(tp)
    lr0, epochs = recipe["lr"], recipe["epochs"]
    optimizer = build_optimizer(model, lr0, tp.momentum, tp.weight_decay)

    stage_hash = params.stage_hash(args.variant)
    ckpt_dir = CHECKPOINTS_DIR / args.variant
    ckpt = load_checkpoint(ckpt_dir / "last.pt")
    start_epoch, history, best, previous_run = 0, [], {"acc": -1.0, "epoch": -1}, None
    if ckpt is not None and ckpt["params_hash"] == stage_hash and ckpt["epoch"] < epochs:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        start_epoch, history, best = ckpt["epoch"], ckpt["history"], ckpt["best"]
        previous_run = ckpt.get("mlflow_run_id")
        set_rng_state(ckpt["rng"][info.rank] if info.rank < len(ckpt["rng"]) else ckpt["rng"][0])
        if info.is_main:
            print(f"train@{args.variant}: resuming from {ckpt_dir / 'last.pt'} at epoch {start_epoch}")
    else:
        torch.manual_seed(params.seed + info.rank)      # per-rank augmentation randomness
        if ckpt is not None and info.is_main:
            print(f"train@{args.variant}: ignoring {ckpt_dir / 'last.pt'} (other params or already complete)")

    train_model = model
    if info.enabled:
        train_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[info.local_rank] if device.type == "cuda" else None, broadcast_buffers=False)
    if tp.compile:
        train_model = torch.compile(train_model)

    per_rank_batch = recipe["batch_size"] // info.world_size
    sampler = DistributedSampler(train_set, num_replicas=info.world_size, rank=info.rank, shuffle=True,
                                 seed=params.seed)
    pin = device.type == "cuda"
    train_loader = DataLoader(train_set, batch_size=per_rank_batch, sampler=sampler,
                              num_workers=params.data.num_workers, pin_memory=pin,
                              persistent_workers=params.data.num_workers > 0)
    test_shard = Subset(test_set, range(info.rank, len(test_set), info.world_size))   # exact, no padding
    test_loader = DataLoader(test_shard, batch_size=max(per_rank_batch, 256), shuffle=False,
                             num_workers=params.data.num_workers, pin_memory=pin)

    run = None
    if info.is_main:
        import mlflow
        tags = run_tags(params, "train", args.variant)
        if previous_run:
            tags["resumed_from"] = previous_run
            client = mlflow.tracking.MlflowClient()
            try:
                if client.get_run(previous_run).info.status == "RUNNING":   # the interrupted run
                    client.set_terminated(previous_run, "KILLED")
            except mlflow.exceptions.MlflowException:
                pass                                                        # e.g. logged to another store
        run = mlflow.start_run(experiment_id=experiment_id, run_name=f"train@{args.variant}", tags=tags)
        mlflow.log_params(flatten({"seed": params.seed, "data": asdict(params.data), "filters": asdict(params.filters),
                                   "network": asdict(params.network), "model": asdict(variant), "train": asdict(tp), "recipe": recipe,
                                   "world_size": info.world_size, "n_parameters": n_params, "start_epoch": start_epoch}))
        if (FILTERS_DIR / "filters.png").is_file():
            mlflow.log_artifact(str(FILTERS_DIR / "filters.png"))
        mlflow.log_dict(card, "data_card.json")
    run_id = broadcast_object(run.info.run_id if run else None)

    status = "FAILED"
    try:
        train_seconds, train_images = 0.0, 0
        for epoch in range(start_epoch, epochs):
            lr = step_lr(lr0, epoch, recipe["lr_step"], tp.lr_gamma)
            for group in optimizer.param_groups:
                group["lr"] = lr
            sampler.set_epoch(epoch)
            progress = None
            if tp.progress and info.is_main:
                from tqdm import tqdm
                progress = tqdm(total=len(train_loader), desc=f"train@{args.variant} epoch {epoch + 1}/{epochs}",
                                file=sys.stderr, leave=False)
            t0 = time.perf_counter()
            tr = train_one_epoch(train_model, train_loader, optimizer, device, epoch, tp.amp, tp.channels_last,
                                 progress)
            seconds = time.perf_counter() - t0
            if progress is not None:
                progress.close()
            te = evaluate(model, test_loader, device, tp.amp, tp.channels_last)
            train_seconds, train_images = train_seconds + seconds, train_images + tr.samples
            row = {"epoch": epoch + 1, "lr": lr, "train_loss": tr.loss, "train_acc": tr.top1, "test_loss": te.loss,
                   "test_acc": te.top1, "test_top5": te.top5, "epoch_seconds": seconds,
                   "images_per_second": tr.samples / seconds}
            history.append(row)
            improved = te.top1 > best["acc"]
            if improved:
                best = {"acc": te.top1, "top5": te.top5, "epoch": epoch + 1}
            rng_states = gather_rng_states()
            if info.is_main:
                import mlflow
                mlflow.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=epoch + 1)
                if improved and tp.select == "best":
                    atomic_save(model.state_dict(), ckpt_dir / "best.pt")
                atomic_save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch + 1,
                             "history": history, "best": best, "rng": rng_states, "params_hash": stage_hash,
                             "mlflow_run_id": run_id}, ckpt_dir / "last.pt")
                print(f"train@{args.variant} epoch {epoch + 1}/{epochs}: loss {tr.loss:.4f} "
                      f"train acc {tr.top1:.4f} test acc {te.top1:.4f} ({tr.samples / seconds:.0f} img/s)")
            barrier()

        if info.is_main:
            import mlflow
            state = model.state_dict()
            if tp.select == "best" and (ckpt_dir / "best.pt").is_file():
                state = torch.load(ckpt_dir / "best.pt", weights_only=True)
            out_dir = TRAIN_DIR / args.variant
            final = history[-1]
            metrics = {"final_test_acc": final["test_acc"], "final_test_error": 100 * (1 - final["test_acc"]),
                       "final_test_top5": final["test_top5"], "final_train_acc": final["train_acc"],
                       "best_test_acc": best["acc"], "best_test_error": 100 * (1 - best["acc"]),
                       "best_epoch": best["epoch"], "epochs": epochs, "n_parameters": n_params,
                       "selected": tp.select, "world_size": info.world_size,
                       "images_per_second": train_images / train_seconds if train_seconds else None}
            write_json(metrics, out_dir / "metrics.json")
            write_csv(history, out_dir / "history.csv")
            plot_history(history, out_dir / "curves.png", f"train@{args.variant}")
            model_path = MODELS_DIR / args.variant / "model.pt"
            atomic_save({"state_dict": state, "variant": asdict(variant), "network": asdict(params.network),
                         "filters": asdict(params.filters), "card": {k: card[k] for k in
                                                                     ("name", "channels", "image_size", "num_classes")},
                         "params_hash": stage_hash, "mlflow_run_id": run_id}, model_path)
            mlflow.log_metrics({"final_test_error": metrics["final_test_error"],
                                "best_test_error": metrics["best_test_error"]})
            for path in (out_dir / "metrics.json", out_dir / "history.csv", out_dir / "curves.png"):
                mlflow.log_artifact(str(path))
            mlflow.log_artifact(str(model_path), artifact_path="checkpoint")
            shutil.rmtree(ckpt_dir, ignore_errors=True)
        status = "FINISHED"
    except NonFiniteError as exc:
        raise SystemExit(f"error: train@{args.variant}: {exc}")
    finally:
        if run is not None:
            import mlflow
            mlflow.end_run(status=status)
        barrier()
        cleanup()


if __name__ == "__main__":
    main()
