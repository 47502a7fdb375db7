"""The trained models in MLflow: logged in the pipeline's experiment, registered with meaning.

* Each training logs its model in the pipeline's experiment, linked to its train run and named
  ``<variant>-<seed>``, and registers it as ``pcn-<variant>``, with tags (variant, seed, data set and
  its digest, epochs, test error, params hash, resume key, git commit, DVC experiment name) and a
  description of what goes in and what comes out.
* The logged model takes images as a user has them: for the in-memory data sets (mnist5k,
  translated_mnist, cifar10, synthetic) uint8 pixels (N, C, H, W) in 0..255, normalized inside
  (:class:`pcn.pipeline.build.PixelInput`); for ImageNet, whose training input comes from resizing and
  cropping transforms, the normalized float tensor the network itself takes (its description says so).
* **What creates a version**: a training whose resume key (params, code, data card) has none yet.
  Rewriting a stage's outputs from its finished checkpoint registers nothing: the version of the same
  key is found (tag ``pcn.resume_key``).
* **Aliases**: when a pipeline execution completes (its report stage), ``seed-<s>`` of each selected
  variant's registered model moves to the version of that seed's current model, and ``current`` to
  that of the first seed in ``seeds``: ``models:/pcn-modulus@current`` is the model the latest
  completed execution reports on.
"""

from __future__ import annotations

import copy
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from pcn.data.datasets import IN_MEMORY
from pcn.layout import Workspace, run_name
from pcn.nn.phase_collapse import with_plain_projection
from pcn.pipeline.build import PixelInput
from pcn.schema import VariantConfig
from pcn.tracking.runs import git_commit

KEY_TAG = "pcn.resume_key"
CURRENT_ALIAS = "current"


def registered_name(variant: str) -> str:
    return f"pcn-{variant}"


def find_version(client, variant: str, resume_key: str):
    """The registered version of the model with this resume key (hexadecimal), or None."""
    found = client.search_model_versions(f"name='{registered_name(variant)}' and tags.`{KEY_TAG}` = '{resume_key}'")
    return found[0] if found else None


def servable(model: torch.nn.Module, weights: dict, card: dict, test_batches):
    """The model to log, in evaluation mode on the CPU, and an input example of two test images."""
    model = with_plain_projection(copy.deepcopy(model).cpu().eval())
    model.load_state_dict(weights)
    if card["name"] in IN_MEMORY:
        norm = card["normalization"]
        return PixelInput(model, norm["mean"], norm["std"]).eval(), test_batches.images[:2].cpu()
    images, _ = next(iter(test_batches.epoch(0)))
    return model, images[:2].float().cpu()


def description(variant: str, v, seed: int, card: dict, metrics: dict) -> str:
    shape = f"(N, {card['channels']}, {card['image_size']}, {card['image_size']})"
    if card["name"] in IN_MEMORY:
        norm = card["normalization"]
        inputs = (
            f"uint8 images {shape}, pixel values 0..255 (the model normalizes them itself: "
            f"(x / 255 - mean) / std, mean {norm['mean']}, std {norm['std']})"
        )
    else:
        inputs = f"float32 images {shape}, already resized, cropped and normalized as in pcn/data/imagenet.py"
    classes = card.get("classes") or list(range(card["num_classes"]))
    return (
        f"{variant}: {v.arch} with the {v.nonlinearity} non-linearity, trained on {card['name']} with seed "
        f"{seed} for {metrics['epochs']} epochs; test error {metrics['final_test_error']:.2f}%. Input: {inputs}. "
        f"Output: (N, {card['num_classes']}) float32 logits, column k = class {classes[0]!r}, "
        f"{classes[1]!r}, ... in the order of the data card."
    )


@dataclass(frozen=True)
class TrainedRun:
    """What a finished training run registers: its variant (name and configuration), seed, data card, metrics
    and resume key."""

    variant: str
    config: VariantConfig
    seed: int
    card: dict
    metrics: dict
    resume_key: str


def version_tags(trained: TrainedRun, root: Path, exp_name: str) -> dict[str, str]:
    """The tags a model version is created with: what it is, how well it did, and the resume key that finds it."""
    card, metrics = trained.card, trained.metrics
    tags = {
        "variant": trained.variant,
        "seed": trained.seed,
        "data.name": card["name"],
        "data.digest": card["digest"],
        "epochs": metrics["epochs"],
        "test_error_pct": f"{metrics['final_test_error']:.4f}",
        "params_hash": metrics["params_hash"],
        KEY_TAG: trained.resume_key,
        "git.commit": git_commit(root),
        "dvc.exp_name": exp_name,
    }
    return {k: str(v) for k, v in tags.items()}


def ensure_registered_model(client, name: str) -> None:
    """Create the registered model ``name`` unless it exists."""
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(name)
    except MlflowException as exc:
        if exc.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
            raise


def log_and_register(run, trained: TrainedRun, model, weights: dict, test_batches, root: Path, exp_name="") -> None:
    """Log and register the trained model (module docstring); a model already registered is not again. ``root``:
    the project (its ``pcn`` package is logged with the model, its git commit tagged); ``exp_name``: the DVC
    experiment's name, if any. The version is created with its tags and description in one call, so that a kill
    never leaves an untagged version that the next run would not find."""
    import mlflow
    from mlflow.models import infer_signature

    name, label = registered_name(trained.variant), f"train@{run_name(trained.variant, trained.seed)}"
    try:
        if not run.reachable():  # a frozen server would cost a request timeout per call of log_model
            raise ConnectionError("the MLflow store does not answer")
        if find_version(run.client, trained.variant, trained.resume_key) is not None:
            print(f"{label}: this model is registered already ({name}); not again")
            return
        servable_model, example = servable(model, weights, trained.card, test_batches)
        with torch.no_grad():
            logits = servable_model(example)
        mlflow.set_experiment(experiment_id=run.experiment_id)  # the logged model's experiment
        info = mlflow.pytorch.log_model(
            servable_model,
            name=run_name(trained.variant, trained.seed),
            run_id=run.run_id,
            input_example=example.numpy(),
            signature=infer_signature(example.numpy(), logits.numpy()),
            serialization_format="pt2",
            pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", "numpy"],
            code_paths=[str(root / "pcn")],
            validate_serving_input=False,
        )
        ensure_registered_model(run.client, name)
        run.client.create_model_version(
            name,
            source=info.model_uri,
            run_id=run.run_id,
            tags=version_tags(trained, root, exp_name),
            description=description(trained.variant, trained.config, trained.seed, trained.card, trained.metrics),
            model_id=info.model_id,
        )
    except Exception as exc:  # the stage's results stand without it
        print(
            f"warning: {label}: the MLflow model was not logged or registered ({type(exc).__name__}: {exc})",
            file=sys.stderr,
        )


def move_aliases(client, workspace: Workspace, variants: list[str], seeds: list[int]) -> dict[str, dict[str, str]]:
    """Point ``seed-<s>`` and ``current`` of each variant's registered model at the versions of the current
    models (``models/<variant>-<seed>/model.pt``, found by resume key); returns ``{model: {alias: version}}``.
    Models never registered (``runtime.log_models: false``) are skipped."""
    moved = {}
    for variant in variants:
        aliases = {}
        for seed in seeds:
            saved = torch.load(workspace.model_file(run_name(variant, seed)), map_location="cpu", weights_only=True)
            version = find_version(client, variant, saved["resume_key"])
            if version is None:
                continue
            aliases[f"seed-{seed}"] = version.version
            if seed == seeds[0]:
                aliases[CURRENT_ALIAS] = version.version
        for alias, version in aliases.items():
            client.set_registered_model_alias(registered_name(variant), alias, version)
        if aliases:
            moved[registered_name(variant)] = aliases
    return moved
