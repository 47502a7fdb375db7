"""The trained models in MLflow: logged in the pipeline's experiment, registered with meaning.

* Each training logs its model in the pipeline's experiment, linked to its train run and named
  ``<variant>-<seed>``, and registers it as ``pcn-<variant>``, with tags (variant, seed, data set and
  its digest, epochs, test error, params hash, resume key, git commit, DVC experiment name) and a
  description of what goes in and what comes out, and how to get the test split it was measured on. The
  registered model itself carries a description (the paper, the variant, the data set and its input convention,
  the aliases) and tags (variant, architecture, non-linearity, data set): :func:`model_description`.
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
from pcn.tracking.verified import manifest_tags, no_pickled_sample_inputs

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
        f"{classes[1]!r}, ... in the order of the data card. Its held-out test split (the images its test error "
        f"was measured on): `pcn test-split --seed {seed}` in the project, at the commit of tag git.commit."
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


PAPER = "Phase Collapse in Neural Networks (Guth, Zarka, Mallat, ICLR 2022)"


def model_description(variant: str, v, card: dict) -> str:
    """What the registered model ``pcn-<variant>`` is, for the registry's model page: the paper, the variant, the
    data set and its input convention, what its aliases mean and how to get a seed's test split."""
    if card["name"] in IN_MEMORY:
        inputs = f"uint8 pixels (N, {card['channels']}, {card['image_size']}, {card['image_size']}) in 0..255"
    else:
        inputs = "float32 images normalized as in pcn/data/imagenet.py"
    return (
        f"{variant}: a network of {PAPER}, architecture {v.arch}, non-linearity {v.nonlinearity}, trained on "
        f"{card['name']} ({card['num_classes']} classes). Input: {inputs}; output: logits, one column per class. "
        f"Each version is one training seed (its tags: seed, test_error_pct, pcn.resume_key). "
        f"Aliases: '{CURRENT_ALIAS}' is the model of the first seed of the latest completed pipeline execution "
        f"(models:/{registered_name(variant)}@{CURRENT_ALIAS}); 'seed-<s>' is that execution's model of seed s. "
        "Evaluate a version only on its seed's held-out test split (with data.resplit each seed has its own): "
        "`pcn test-split --seed <s>` writes it to an .npz file (images, labels, seed, split)."
    )


def model_tags(variant: str, v, card: dict) -> dict[str, str]:
    """The registered model's own tags: what every version of it shares."""
    return {"variant": variant, "architecture": v.arch, "nonlinearity": v.nonlinearity, "data.name": card["name"]}


def ensure_registered_model(client, name: str, description: str = "", tags: dict | None = None) -> None:
    """Create the registered model ``name`` unless it exists; either way give it ``description`` and ``tags``
    (those of the latest registration)."""
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(name)
    except MlflowException as exc:
        if exc.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
            raise
    if description:
        client.update_registered_model(name, description=description)
    for key, value in (tags or {}).items():
        client.set_registered_model_tag(name, key, value)


def log_and_register(run, trained: TrainedRun, model, weights: dict, test_batches, root: Path, exp_name="") -> None:
    """Log and register the trained model (module docstring); a model already registered is not again. ``root``:
    the project (its ``pcn`` package is logged with the model, its git commit tagged); ``exp_name``: the DVC
    experiment's name, if any. The version is created with its tags and description in one call, so that a kill
    never leaves an untagged version that the next run would not find."""
    import mlflow

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
        with no_pickled_sample_inputs():
            info = log_model(servable_model, trained, example, logits, root, run.run_id)
        v, card = trained.config, trained.card
        ensure_registered_model(
            run.client, name, model_description(trained.variant, v, card), model_tags(trained.variant, v, card)
        )
        run.client.create_model_version(
            name,
            source=info.model_uri,
            run_id=run.run_id,
            tags={**version_tags(trained, root, exp_name), **logged_manifest(info.model_uri)},
            description=description(trained.variant, trained.config, trained.seed, trained.card, trained.metrics),
            model_id=info.model_id,
        )
    except Exception as exc:  # the stage's results stand without it
        print(
            f"warning: {label}: the MLflow model was not logged or registered ({type(exc).__name__}: {exc})",
            file=sys.stderr,
        )


def logged_manifest(model_uri: str) -> dict[str, str]:
    """The manifest tags (:func:`pcn.tracking.verified.manifest_tags`) of the model just logged at ``model_uri``."""
    import tempfile

    import mlflow

    with tempfile.TemporaryDirectory(prefix="pcn-manifest-") as private:
        return manifest_tags(Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=private)))


def log_model(servable_model, trained: TrainedRun, example, logits, root: Path, run_id: str):
    """Log the servable model as pt2 (no pickle), with its signature, an input example (JSON) and pcn's code."""
    import mlflow
    from mlflow.models import infer_signature

    return mlflow.pytorch.log_model(
        servable_model,
        name=run_name(trained.variant, trained.seed),
        run_id=run_id,
        input_example=example.numpy(),
        signature=infer_signature(example.numpy(), logits.numpy()),
        serialization_format="pt2",
        pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", "numpy"],
        code_paths=[str(root / "pcn")],
        validate_serving_input=False,
    )


def workspace_aliases(client, workspace: Workspace, variants: list[str], seeds: list[int]) -> dict[str, dict[str, str]]:
    """Where ``seed-<s>`` and ``current`` of each variant's registered model should point: the versions of the
    workspace's models (``models/<variant>-<seed>/model.pt``, found by resume key), ``{model: {alias: version}}``.
    A model file that is missing, or a model never registered (``runtime.log_models: false``), is skipped."""
    wanted = {}
    for variant in variants:
        aliases = {}
        for seed in seeds:
            path = workspace.model_file(run_name(variant, seed))
            if not path.is_file():
                continue
            saved = torch.load(path, map_location="cpu", weights_only=True)
            version = find_version(client, variant, saved["resume_key"])
            if version is None:
                continue
            aliases[f"seed-{seed}"] = str(version.version)
            if seed == seeds[0]:
                aliases[CURRENT_ALIAS] = str(version.version)
        if aliases:
            wanted[registered_name(variant)] = aliases
    return wanted


def alias_version(client, name: str, alias: str) -> str | None:
    """The version that ``name@alias`` points at, or None if the alias (or the model) does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def stale_aliases(
    client, workspace: Workspace, variants: list[str], seeds: list[int]
) -> list[tuple[str, str, str | None, str]]:
    """The aliases that do not point at the workspace's models: ``(model, alias, its version or None, wanted
    version)`` for each (:func:`workspace_aliases`); empty when the registry follows the workspace."""
    return [
        (name, alias, alias_version(client, name, alias), version)
        for name, aliases in workspace_aliases(client, workspace, variants, seeds).items()
        for alias, version in aliases.items()
        if alias_version(client, name, alias) != version
    ]


def move_aliases(client, workspace: Workspace, variants: list[str], seeds: list[int]) -> dict[str, dict[str, str]]:
    """Point ``seed-<s>`` and ``current`` of each variant's registered model at the versions of the current
    models (:func:`workspace_aliases`); returns ``{model: {alias: version}}``."""
    moved = workspace_aliases(client, workspace, variants, seeds)
    for name, aliases in moved.items():
        for alias, version in aliases.items():
            client.set_registered_model_alias(name, alias, version)
    return moved
