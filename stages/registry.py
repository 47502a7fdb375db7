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
import os
import sys

import torch

from pcn.data.datasets import IN_MEMORY
from pcn.nn.phase_collapse import with_plain_projection
from pcn.pipeline.build import PixelInput
from pcn.pipeline.tracking import git_commit

from common import MODELS_DIR, ROOT, run_name

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


def log_and_register(
    run, model, weights: dict, card: dict, test_batches, variant: str, v, seed: int, metrics: dict, resume_key: str
) -> None:
    """Log and register the trained model (module docstring); a model already registered is not again."""
    import mlflow
    from mlflow.models import infer_signature

    name = registered_name(variant)
    try:
        if not run.reachable():  # a frozen server would cost a request timeout per call of log_model
            raise ConnectionError("the MLflow store does not answer")
        if find_version(run.client, variant, resume_key) is not None:
            print(f"train@{run_name(variant, seed)}: this model is registered already ({name}); not again")
            return
        servable_model, example = servable(model, weights, card, test_batches)
        with torch.no_grad():
            logits = servable_model(example)
        mlflow.set_experiment(experiment_id=run.experiment_id)  # the logged model's experiment
        info = mlflow.pytorch.log_model(
            servable_model,
            name=run_name(variant, seed),
            run_id=run.run_id,
            input_example=example.numpy(),
            signature=infer_signature(example.numpy(), logits.numpy()),
            serialization_format="pt2",
            registered_model_name=name,
            pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", "numpy"],
            code_paths=[str(ROOT / "pcn")],
            validate_serving_input=False,
        )
        version = info.registered_model_version
        tags = {
            "variant": variant,
            "seed": seed,
            "data.name": card["name"],
            "data.digest": card["digest"],
            "epochs": metrics["epochs"],
            "test_error_pct": f"{metrics['final_test_error']:.4f}",
            "params_hash": metrics["params_hash"],
            KEY_TAG: resume_key,
            "git.commit": git_commit(ROOT),
            "dvc.exp_name": os.environ.get("DVC_EXP_NAME", ""),
        }
        for key, value in tags.items():
            run.client.set_model_version_tag(name, version, key, str(value))
        run.client.update_model_version(name, version, description=description(variant, v, seed, card, metrics))
    except Exception as exc:  # the stage's results stand without it
        print(
            f"warning: train@{run_name(variant, seed)}: the MLflow model was not logged or registered "
            f"({type(exc).__name__}: {exc})",
            file=sys.stderr,
        )


def move_aliases(client, variants: list[str], seeds: list[int]) -> dict[str, dict[str, str]]:
    """Point ``seed-<s>`` and ``current`` of each variant's registered model at the versions of the current
    models (``models/<variant>-<seed>/model.pt``, found by resume key); returns ``{model: {alias: version}}``.
    Models never registered (``runtime.log_models: false``) are skipped."""
    moved = {}
    for variant in variants:
        aliases = {}
        for seed in seeds:
            saved = torch.load(MODELS_DIR / run_name(variant, seed) / "model.pt", map_location="cpu", weights_only=True)
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
