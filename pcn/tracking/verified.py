"""Registered models that prove they are ours: a manifest of digests at registration, checked before loading.

* **At registration** (:func:`manifest_tags`): the SHA-256 of every file of the logged model goes into the model
  version, in the same ``create_model_version`` call as its other tags: ``pcn.manifest`` (``{path: sha256}`` as
  JSON) and ``pcn.manifest_sha256`` (the digest of that JSON).
* **Before loading** (:func:`load_model`, ``pcn model load <name>@<alias>``): the version's files are copied
  (bytes only) into a private temporary folder; every file is checked against the manifest (none missing, none
  added, none changed), and ``MLmodel`` and every file it names against what pcn logs (:func:`check_format`):
  the ``pytorch`` and ``python_function`` flavors with loader ``mlflow.pytorch``, one ``data/model.pt2``
  archive whose sample inputs are empty (pcn logs no pickle), JSON input examples, no other loader, data file or
  code than pcn's own. Only then does MLflow read the copy, never the store.
* What this does not cover: someone who can write the **tracking store** (its database) can rewrite the manifest
  tags with the model; digests protect against a changed artifact store (``mlartifacts/``, a bucket), not
  against a changed database. ``mlflow models serve`` and ``mlflow.pyfunc.load_model`` check nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from pcn.files import file_digest
from pcn.tracking.model_input import checked_input

MANIFEST_TAG = "pcn.manifest"
MANIFEST_DIGEST_TAG = "pcn.manifest_sha256"
#: The files MLflow writes beside the model that pcn logs (``code/`` holds pcn's package), by kind.
ALLOWED_TOP = {
    "MLmodel",
    "conda.yaml",
    "python_env.yaml",
    "requirements.txt",
    "input_example.json",
    "serving_input_example.json",
    "registered_model_meta",
}
PT2 = "data/model.pt2"


class ModelVerificationError(RuntimeError):
    """A registered model is not the one pcn registered (or not of pcn's format): refused before loading."""

    expected = True


@contextlib.contextmanager
def no_pickled_sample_inputs():
    """While logging a pt2 model: the exported program is saved without its example inputs, which torch would
    otherwise pickle into ``sample_inputs/`` (and read back with ``weights_only=False`` as a fallback); MLflow
    keeps its own input example as JSON."""
    import torch

    save = torch.export.save

    def without_inputs(program, *args, **kwargs):
        program.example_inputs = None
        return save(program, *args, **kwargs)

    torch.export.save = without_inputs
    try:
        yield
    finally:
        torch.export.save = save


def manifest(folder: Path) -> dict[str, str]:
    """``{relative path: sha256}`` of every file under ``folder``; a link or a special file is refused by name."""
    folder = Path(folder)
    found = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            if path.is_symlink() or not (path.is_dir() or path.is_file()):
                raise ModelVerificationError(f"{path.relative_to(folder)} in the model is a link or special file")
        for name in filenames:
            path = Path(dirpath) / name
            found[path.relative_to(folder).as_posix()] = file_digest(path)
    return dict(sorted(found.items()))


def manifest_digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def manifest_tags(folder: Path) -> dict[str, str]:
    """The model version tags that record the files of the logged model in ``folder``."""
    text = json.dumps(manifest(folder), sort_keys=True)
    return {MANIFEST_TAG: text, MANIFEST_DIGEST_TAG: manifest_digest(text)}


def check_manifest(folder: Path, tags: dict[str, str], label: str) -> None:
    """Raise :class:`ModelVerificationError` naming the first file of ``folder`` that the version's manifest does
    not record, or records with another digest, or that is missing."""
    text = tags.get(MANIFEST_TAG)
    if not text or tags.get(MANIFEST_DIGEST_TAG) != manifest_digest(text):
        raise ModelVerificationError(
            f"{label} has no valid {MANIFEST_TAG} tag (registered before pcn recorded digests, or changed): "
            "refused; register it again by rerunning its train stage"
        )
    recorded, present = json.loads(text), manifest(folder)
    for path in sorted(set(recorded) | set(present)):
        if path not in present:
            raise ModelVerificationError(f"{label}: file {path} of the registered model is missing: refused")
        if path not in recorded:
            raise ModelVerificationError(f"{label}: file {path} was not in the registered model: refused")
        if recorded[path] != present[path]:
            raise ModelVerificationError(f"{label}: file {path} differs from the registered one (SHA-256): refused")


def check_format(folder: Path, label: str) -> dict:
    """Check that ``folder`` is a model in pcn's format (module docstring); returns its MLmodel."""

    def refuse(what: str):
        raise ModelVerificationError(f"{label}: {what}; pcn logs only pt2 models loaded by mlflow.pytorch: refused")

    try:
        mlmodel = yaml.safe_load((folder / "MLmodel").read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        refuse(f"MLmodel is unreadable ({type(exc).__name__})")
    flavors = mlmodel.get("flavors") if isinstance(mlmodel, dict) else None
    if not isinstance(flavors, dict) or set(flavors) != {"python_function", "pytorch"}:
        refuse(f"MLmodel names the flavors {sorted(flavors or {})}, not python_function and pytorch")
    pyfunc, torch_flavor = flavors["python_function"], flavors["pytorch"]
    if pyfunc.get("loader_module") != "mlflow.pytorch" or pyfunc.get("data") != "data":
        refuse(f"MLmodel names the loader {pyfunc.get('loader_module')!r} with data {pyfunc.get('data')!r}")
    if torch_flavor.get("model_data") != "data" or pyfunc.get("code") not in (None, "code"):
        refuse("MLmodel names another model folder or code folder")
    example = mlmodel.get("saved_input_example_info") or {}
    for key in ("artifact_path", "serving_input_path"):
        if example.get(key) not in (None, "input_example.json", "serving_input_example.json"):
            refuse(f"MLmodel names the input example {example.get(key)!r}, not a JSON file")
    for path in manifest(folder):
        top = path.split("/", 1)[0]
        if (
            path == PT2
            or path in ALLOWED_TOP
            or (top == "code" and path.startswith("code/pcn/") and path.endswith(".py"))
        ):
            continue
        refuse(f"unexpected file {path}")
    if not (folder / PT2).is_file():
        refuse(f"{PT2} is missing")
    with zipfile.ZipFile(folder / PT2) as archive:
        for member in archive.infolist():
            if "sample_inputs/" in member.filename and member.file_size:
                refuse(f"{PT2} holds pickled sample inputs ({member.filename})")
    return mlmodel


@dataclass
class VerifiedModel:
    """A registered model whose files were verified before loading; :meth:`predict` checks its input first."""

    label: str
    pyfunc: object
    dtype: str
    shape: tuple[int, int, int]

    def predict(self, images):
        return self.pyfunc.predict(checked_input(images, self.dtype, self.shape))


def input_spec(mlmodel: dict, label: str) -> tuple[str, tuple[int, int, int]]:
    """The input dtype and (C, H, W) of the model's signature."""
    try:
        spec = json.loads(mlmodel["signature"]["inputs"])[0]["tensor-spec"]
        return spec["dtype"], tuple(int(d) for d in spec["shape"][1:])
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise ModelVerificationError(f"{label}: MLmodel has no tensor signature ({type(exc).__name__})") from exc


def resolve_version(client, reference: str):
    """The model version of ``<name>@<alias>`` or ``<name>/<version>``."""
    if "@" in reference:
        name, alias = reference.split("@", 1)
        return client.get_model_version_by_alias(name, alias)
    name, _, version = reference.rpartition("/")
    if not name or not version.isdigit():
        raise ModelVerificationError(f"model {reference!r}: give <name>@<alias> (pcn-modulus@current) or <name>/<n>")
    return client.get_model_version(name, version)


def load_model(reference: str, tracking_uri: str | None = None) -> VerifiedModel:
    """Load the registered model ``reference`` (``pcn-modulus@current``) after verifying every file it has
    against the digests recorded at registration and its format against pcn's (module docstring)."""
    import mlflow
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    version = resolve_version(client, reference)
    label = f"{reference} (version {version.version})"
    private = tempfile.mkdtemp(prefix="pcn-model-")  # 0700: nobody swaps files between the check and the load
    folder = Path(
        mlflow.artifacts.download_artifacts(artifact_uri=version.source, dst_path=private, tracking_uri=tracking_uri)
    )
    check_manifest(folder, version.tags, label)
    mlmodel = check_format(folder, label)
    dtype, shape = input_spec(mlmodel, label)
    return VerifiedModel(label, mlflow.pyfunc.load_model(str(folder)), dtype, shape)
