"""Typed, strictly validated pipeline parameters.

``params.yaml`` (after any ``dvc exp run -S`` overrides), read as YAML 1.2 like DVC reads it,
is turned into nested dataclasses by :func:`parse_params`. Every problem is reported at
once, before any work starts, with the dotted key and the valid choices: unknown or
misspelled keys (DVC itself silently adds them), missing keys, wrong types, a scalar
where a list is expected, out-of-range values, unsafe names and inconsistent
combinations. The valid choices of each setting are those of :mod:`pcn.names`, which the
implementations' registries read too (the schema imports nothing from the implementation).

Names that end up in file paths, stage names and shell commands (variant names, the
MLflow experiment) must match :data:`NAME_PATTERN`: letters, digits and ``_`` only for
variants, plus ``.`` and ``-`` (not first) for the experiment.
"""

from __future__ import annotations

import re
import typing
from dataclasses import MISSING, asdict, dataclass, field
from pathlib import Path

from pcn.files import sha256_json
from pcn.names import (
    ARCHITECTURES,
    AUGMENTATIONS,
    BACKENDS,
    DATASETS,
    DEVICES,
    LAUNCHERS,
    MNIST5K_PER_CLASS,
    SELECTIONS,
    STEMS,
    THRESHOLDED,
    nonlinearities_of,
)
from pcn.typed_params import auto_or_count, bounded, build, choice, listed

#: Largest seed: every random generator the seeds reach takes it, with the epoch added (numpy's legacy
#: seeding and torch.Generator.manual_seed(seed + epoch) accept up to 2**32 - 1 and 2**64 - 1).
MAX_SEED = 2**31 - 1
NAME_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
EXPERIMENT_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
#: A committed study's name (``studies/<name>.json``): a file name, never a path.
STUDY_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}")


class ParamsError(ValueError):
    """Invalid parameters; the message lists every problem found."""


@dataclass
class Mnist5kConfig:
    test_fraction: float = bounded(0.0, 1.0, low_open=True, high_open=True)  # stratified test split


@dataclass
class TranslatedMnistConfig:
    canvas: int = bounded(28)  # side of the canvas the 28x28 digits are placed on
    test_fraction: float = bounded(0.0, 1.0, low_open=True, high_open=True)  # stratified test split


@dataclass
class Cifar10Config:
    root: str = field(default=MISSING)  # holds cifar-10-batches-py
    download: bool = field(default=MISSING)  # download into root when missing


@dataclass
class ImagenetConfig:
    root: str = field(default=MISSING)  # ImageFolder tree with train/ and val/
    verify: bool = field(default=MISSING)  # decode every image at fetch, naming unreadable files


@dataclass
class SyntheticConfig:
    n_train: int = bounded(1)
    n_test: int = bounded(1)
    image_size: int = bounded(4)
    channels: int = bounded(1)
    classes: int = bounded(2)


@dataclass
class DataConfig:
    name: str = choice(*DATASETS)
    split_seed: int = bounded(0, MAX_SEED)  # mnist5k split, synthetic images: not the training seeds
    resplit: bool = field(default=MISSING)  # each seed draws its own train/test split (mnist-like sets)
    validation_fraction: float = bounded(0.0, 1.0, high_open=True)  # per class, carved from the training part
    augment: str = choice(*AUGMENTATIONS)
    scan: list[str] = listed(allow_empty=True)  # sources listed at every repro ([imagenet] for ImageNet)
    mnist5k: Mnist5kConfig = field(default=MISSING)
    translated_mnist: TranslatedMnistConfig = field(default=MISSING)
    cifar10: Cifar10Config = field(default=MISSING)
    imagenet: ImagenetConfig = field(default=MISSING)
    synthetic: SyntheticConfig = field(default=MISSING)


@dataclass
class FiltersConfig:
    n_angles: int = bounded(1)
    full_angles: bool = field(default=MISSING)
    sigma0: float = bounded(0.0, low_open=True)
    factorize_from: int = bounded(0)


@dataclass
class NetworkConfig:
    widths: list[int] = listed()
    normalize_eps: float = bounded(0.0)
    filter_backend: str = choice(*BACKENDS)  # how the fixed filtering is computed (same function)
    kernel_tolerance: float = bounded(0.0, 1.0)  # relative truncation of the spatial kernels
    resnet_stem: str = choice(*STEMS)
    scat_J: int = bounded(1)  # scales of the Scat baseline (kymatio Scattering2D)


@dataclass
class VariantConfig:
    arch: str = choice(*ARCHITECTURES)
    nonlinearity: str = field(default=MISSING)
    learned: bool = field(default=True)  # cst/ms parameters, resnet thresh threshold
    # learned parameters' initial values; None: the network's default (pcn.nn: the reference's values,
    # threshold 0.1 for cst and 1.0 for thresh, ms gain 1 and bias 0)
    threshold_init: typing.Optional[float] = bounded(0.0, default=None)
    gain_init: typing.Optional[float] = field(default=None)
    bias_init: typing.Optional[float] = field(default=None)
    lr: typing.Optional[float] = bounded(0.0, low_open=True, default=None)  # None: train.lr
    epochs: typing.Optional[int] = bounded(1, default=None)  # None: train.epochs
    lr_step: typing.Optional[int] = bounded(1, default=None)  # None: train.lr_step
    batch_size: typing.Optional[int] = bounded(1, default=None)  # None: train.batch_size

    def recipe(self, train: "TrainConfig") -> dict:
        """The training recipe of this variant: its overrides, else ``train``'s values."""
        return {
            "lr": self.lr or train.lr,
            "epochs": self.epochs or train.epochs,
            "lr_step": self.lr_step or train.lr_step,
            "batch_size": self.batch_size or train.batch_size,
        }


@dataclass
class TrainConfig:
    epochs: int = bounded(1)
    batch_size: int = bounded(1)  # global batch (split across ranks)
    lr: float = bounded(0.0, low_open=True)
    momentum: float = bounded(0.0, 1.0)
    weight_decay: float = bounded(0.0)
    lr_step: int = bounded(1)
    lr_gamma: float = bounded(0.0, 1.0, low_open=True)
    device: str = choice(*DEVICES)
    launcher: str = choice(*LAUNCHERS)
    nproc: int = bounded(1)
    amp: bool = field(default=MISSING)  # bf16 autocast of the Pc products
    channels_last: bool = field(default=MISSING)
    compile: bool = field(default=MISSING)
    select: str = choice(*SELECTIONS)  # model kept: last epoch or best test epoch


@dataclass
class EvaluateConfig:
    batch_size: int = bounded(1)
    max_train_samples: int = bounded(0)  # 0: whole training set for class means
    probe_dim: int = bounded(1)  # probe and Fisher ratio: random projection above this dimension
    fisher_eps: float = bounded(0.0, low_open=True)  # regularization of Sigma_W, relative to Tr(Sigma_W) / P


@dataclass
class ReportConfig:
    confidence: float = bounded(0.5, 1.0, high_open=True)  # level of the intervals of paired differences
    equivalence_margin: float = bounded(0.0)  # "reaches the accuracy of": within this x the reference's error
    vanishing_share: float = bounded(0.0, 1.0)  # claim 6's premise: class means' share of wavelet energy at most
    studies: list[str] = listed(allow_empty=True)  # committed studies/<name>.json shown in the report


@dataclass
class TrackingConfig:
    experiment: str = field(default=MISSING, metadata={"pattern": EXPERIMENT_PATTERN})
    uri: str = field(default=MISSING)  # "" : sqlite:///<repo>/mlflow.db


@dataclass
class RuntimeConfig:
    """How to run, not what to compute: read by the stages, tracked by no stage."""

    progress: bool = field(default=MISSING)  # progress bars
    num_workers: typing.Union[int, str] = auto_or_count()  # ImageNet loader processes per training process
    log_models: bool = field(default=MISSING)  # MLflow logged + registered model per training run
    system_metrics: bool = field(default=MISSING)  # MLflow system metrics (CPU, memory, GPU)


@dataclass
class Params:
    seeds: list[int] = listed()
    data: DataConfig = field(default=MISSING)
    filters: FiltersConfig = field(default=MISSING)
    network: NetworkConfig = field(default=MISSING)
    variants: list[str] = listed()
    models: dict[str, VariantConfig] = field(default=MISSING)
    train: TrainConfig = field(default=MISSING)
    evaluate: EvaluateConfig = field(default=MISSING)
    report: ReportConfig = field(default=MISSING)
    tracking: TrackingConfig = field(default=MISSING)
    runtime: RuntimeConfig = field(default=MISSING)

    def variant(self, name: str) -> VariantConfig:
        if name not in self.models:
            raise ParamsError(f"variant {name!r} is not defined under 'models'; defined: {', '.join(self.models)}")
        return self.models[name]

    def training_params(self, variant: str, seed: int) -> dict:
        """Every value that determines the training run of ``variant`` with ``seed`` (JSON-able)."""
        d = asdict(self)
        data = {
            "name": self.data.name,
            "augment": self.data.augment,
            "split_seed": self.data.split_seed,
            "resplit": self.data.resplit,
            "validation_fraction": self.data.validation_fraction,
            self.data.name: d["data"][self.data.name],
        }
        return {
            "seed": seed,
            "data": data,
            "filters": d["filters"],
            "network": d["network"],
            "train": d["train"],
            "model": d["models"][variant],
        }

    def training_hash(self, variant: str, seed: int) -> str:
        """SHA-256 of :meth:`training_params`."""
        return sha256_json(self.training_params(variant, seed))


def read_params_file(path: Path):
    """A YAML file as DVC reads params: YAML 1.2 (ruamel), so ``1e-3`` is a number and ``yes`` a string.

    Raises
    ------
    ParamsError
        Naming the file, when it is missing or not valid YAML.
    """
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    try:
        return YAML(typ="safe", pure=True).load(Path(path).read_text())
    except FileNotFoundError:
        raise ParamsError(f"{path} not found") from None
    except UnicodeDecodeError as exc:
        raise ParamsError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except YAMLError as exc:
        raise ParamsError(f"{path} is not valid YAML: {exc}") from None


def load_params_file(path: Path) -> Params:
    """Read ``path`` (:func:`read_params_file`) and validate it (:func:`parse_params`)."""
    return parse_params(read_params_file(path), str(path))


def parse_params(data, source: str = "params.yaml") -> Params:
    """Validate a params mapping (as YAML 1.2 reads it) and return typed :class:`Params`.

    Raises
    ------
    ParamsError
        Listing every unknown key, missing key, type error, out-of-range value, unsafe name
        and inconsistency, each with its dotted key.
    """
    errors: list[str] = []
    if not isinstance(data, dict):
        raise ParamsError(f"{source}: expected a mapping at the top level, got {type(data).__name__}")
    params = build(Params, data, "", errors)
    _check_consistency(params, errors)
    if errors:
        raise ParamsError(f"invalid parameters in {source}:\n  - " + "\n  - ".join(errors))
    return params


def _check_names(p: Params, errors: list[str]) -> None:
    for name in p.models:
        if not NAME_PATTERN.fullmatch(name):
            errors.append(
                f"models.{name}: {name!r} is not a safe variant name (it becomes a stage name, a "
                f"folder and a command argument): it must match {NAME_PATTERN.pattern}"
            )
    for i, name in enumerate(p.variants):
        if name not in p.models:
            errors.append(f"variants[{i}]: {name!r} is not defined under 'models'; defined: {', '.join(p.models)}")
    if len(set(p.variants)) != len(p.variants):
        errors.append("variants: names must be unique")
    if any(not 0 <= s <= MAX_SEED for s in p.seeds) or len(set(p.seeds)) != len(p.seeds):
        errors.append(f"seeds: expected distinct integers in [0, {MAX_SEED}], got {p.seeds}")


def study_name_errors(names: list[str], key: str) -> list[str]:
    """What is wrong with ``names`` as the committed studies to show (``key`` names where they were given):
    each must be the stem of a ``studies/<name>.json`` (no folder), and none may be given twice."""
    errors = [
        f"{key}[{i}]: {name!r} is not a study name (the stem of a committed studies/<name>.json, no folder): "
        f"it must match {STUDY_PATTERN.pattern}"
        for i, name in enumerate(names)
        if not STUDY_PATTERN.fullmatch(name)
    ]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        errors.append(f"{key}: names must be unique; given more than once: {', '.join(twice)}")
    return errors


def _check_studies(p: Params, errors: list[str]) -> None:
    errors.extend(study_name_errors(p.report.studies, "report.studies"))


def _check_data(p: Params, errors: list[str]) -> None:
    d = p.data
    if d.name in ("mnist5k", "translated_mnist"):
        fraction = getattr(d, d.name).test_fraction
        n_test = round(fraction * MNIST5K_PER_CLASS)
        if not 0 < n_test < MNIST5K_PER_CLASS:
            errors.append(
                f"data.{d.name}.test_fraction: {fraction} leaves {n_test} of the "
                f"{MNIST5K_PER_CLASS} images per class for testing; both splits must be non-empty"
            )
    if d.augment == "translate" and d.name != "translated_mnist":
        errors.append(f"data.augment: 'translate' moves the digits of translated_mnist; data.name is {d.name}")
    if d.name == "imagenet" and d.augment == "cifar":
        errors.append("data.augment: 'cifar' augmentation assumes 32x32 images; use 'imagenet' or 'none'")
    if sorted(d.scan) != (["imagenet"] if d.name == "imagenet" else []):
        errors.append(
            f"data.scan: must be [imagenet] when data.name is imagenet (its images are read in place, "
            f"so their listing is checked at every repro) and [] otherwise; got {d.scan}"
        )


def _check_models(p: Params, errors: list[str]) -> None:
    for name, v in p.models.items():
        if v.nonlinearity in THRESHOLDED and v.learned and v.threshold_init is not None and v.threshold_init <= 0:
            errors.append(
                f"models.{name}.threshold_init: a learned {v.nonlinearity} threshold is softplus(beta) "
                f"> 0, so its initial value must be > 0; got {v.threshold_init}"
            )
        valid = nonlinearities_of(v.arch)
        if v.nonlinearity not in valid:
            errors.append(
                f"models.{name}.nonlinearity: {v.nonlinearity!r} is not valid for arch {v.arch}; "
                f"valid: {', '.join(valid)}"
            )


def _check_network(p: Params, errors: list[str]) -> None:
    if any(w < 1 for w in p.network.widths):
        errors.append(f"network.widths: every width must be >= 1, got {p.network.widths}")
    if p.filters.factorize_from > len(p.network.widths):
        errors.append(
            f"filters.factorize_from: {p.filters.factorize_from} exceeds the number of blocks "
            f"({len(p.network.widths)} network.widths)"
        )


def _check_train(p: Params, errors: list[str]) -> None:
    if p.train.launcher == "python" and p.train.nproc != 1:
        errors.append("train.nproc: must be 1 with train.launcher=python (use launcher=torchrun for several processes)")
    if p.train.batch_size % p.train.nproc:
        errors.append(f"train.batch_size: {p.train.batch_size} is not divisible by train.nproc={p.train.nproc}")
    for name, v in p.models.items():
        if v.batch_size is not None and v.batch_size % p.train.nproc:
            errors.append(f"models.{name}.batch_size: {v.batch_size} is not divisible by train.nproc={p.train.nproc}")


#: Each check of how settings fit together, with the top-level sections it reads. A check runs when those
#: sections passed the checks of their own keys (types, ranges, choices), so that every problem of a params file
#: is reported at once (a misspelled variant beside a wrong type elsewhere) without follow-on errors.
CONSISTENCY_CHECKS = (
    (_check_names, ("models", "variants", "seeds")),
    (_check_data, ("data",)),
    (_check_models, ("models",)),
    (_check_network, ("network", "filters")),
    (_check_train, ("train", "models")),
    (_check_studies, ("report",)),
)


def _section(error: str) -> str:
    """The top-level key an error message is about (``train.lr: ...`` -> ``train``)."""
    return re.split(r"[.\[:]", error, maxsplit=1)[0]


def _check_consistency(p: Params, errors: list[str]) -> None:
    broken = {_section(e) for e in errors}
    for check, sections in CONSISTENCY_CHECKS:
        if not broken.intersection(sections):
            check(p, errors)
