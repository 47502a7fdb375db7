"""Typed, strictly validated pipeline parameters.

``params.yaml`` (after any ``dvc exp run -S`` overrides) is turned into nested
dataclasses by :func:`parse_params`. Every problem is reported at once, before any
work starts, with the dotted key and the valid choices: unknown or misspelled keys
(DVC itself silently adds them), missing keys, wrong types, out-of-range values and
inconsistent combinations.
"""
from __future__ import annotations

import difflib
import hashlib
import json
import math
import typing
from dataclasses import MISSING, asdict, dataclass, field, fields, is_dataclass

DATASETS = ("mnist5k", "cifar10", "imagenet", "synthetic")
ARCHS = ("lscat", "lscat_skip", "resnet18")
SCAT_NONLINEARITIES = ("mod", "cst", "ms", "mc", "tanh", "relu")
RESNET_NONLINEARITIES = ("relu", "abs", "thresh", "tanh", "powfixed")
FEATURES = ("spatial_mean", "flatten")
DEVICES = ("auto", "cpu", "cuda")
LAUNCHERS = ("python", "torchrun")
AUGMENTATIONS = ("none", "cifar", "imagenet")
BACKENDS = ("auto", "spatial", "fft", "fft_smooth", "matrix")
STEMS = ("imagenet", "small")
SELECTIONS = ("last", "best")


class ParamsError(ValueError):
    """Invalid parameters; the message lists every problem found."""


def choice(*options, default=MISSING):
    return field(default=default, metadata={"choices": options})


def bounded(low=None, high=None, default=MISSING, low_open=False):
    return field(default=default, metadata={"min": low, "max": high, "low_open": low_open})


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
    root: str = field(default=MISSING)            # raw data location for cifar10 / imagenet
    download: bool = field(default=MISSING)       # cifar10: download when missing
    test_fraction: float = bounded(0.0, 1.0, low_open=True)   # mnist5k stratified split
    augment: str = choice(*AUGMENTATIONS)
    num_workers: int = bounded(0)
    synthetic: SyntheticConfig = field(default=MISSING)


@dataclass
class FiltersConfig:
    n_angles: int = bounded(1)
    full_angles: bool = field(default=MISSING)
    sigma0: float = bounded(0.0, low_open=True)
    factorize_from: int = bounded(0)
    backend: str = choice(*BACKENDS)
    kernel_tolerance: float = bounded(0.0, 1.0)


@dataclass
class NetworkConfig:
    widths: list[int] = field(default=MISSING)
    normalize_eps: float = bounded(0.0)
    resnet_stem: str = choice(*STEMS)


@dataclass
class VariantConfig:
    arch: str = choice(*ARCHS)
    nonlinearity: str = field(default=MISSING)
    learned: bool = field(default=True)           # cst/ms parameters, resnet thresh threshold
    threshold_init: typing.Optional[float] = bounded(0.0, default=None)  # None: 0.1 (cst), 1.0 (thresh)
    gain_init: float = field(default=1.0)
    bias_init: float = field(default=0.0)
    lr: typing.Optional[float] = field(default=None)            # None: train.lr
    epochs: typing.Optional[int] = bounded(1, default=None)      # None: train.epochs
    lr_step: typing.Optional[int] = bounded(1, default=None)     # None: train.lr_step
    batch_size: typing.Optional[int] = bounded(1, default=None)  # None: train.batch_size

    def recipe(self, train: "TrainConfig") -> dict:
        """The training recipe of this variant: its overrides, else ``train``'s values."""
        return {"lr": self.lr or train.lr, "epochs": self.epochs or train.epochs,
                "lr_step": self.lr_step or train.lr_step, "batch_size": self.batch_size or train.batch_size}


@dataclass
class TrainConfig:
    epochs: int = bounded(1)
    batch_size: int = bounded(1)                  # global batch (split across ranks)
    lr: float = bounded(0.0, low_open=True)
    momentum: float = bounded(0.0, 1.0)
    weight_decay: float = bounded(0.0)
    lr_step: int = bounded(1)
    lr_gamma: float = bounded(0.0, 1.0, low_open=True)
    device: str = choice(*DEVICES)
    launcher: str = choice(*LAUNCHERS)
    nproc: int = bounded(1)
    amp: bool = field(default=MISSING)            # bf16 autocast of real matmuls on CUDA
    channels_last: bool = field(default=MISSING)
    compile: bool = field(default=MISSING)
    select: str = choice(*SELECTIONS)             # checkpoint kept as the model: last or best epoch
    progress: bool = field(default=MISSING)       # tqdm progress bar


@dataclass
class EvaluateConfig:
    feature: str = choice(*FEATURES)
    batch_size: int = bounded(1)
    max_train_samples: int = bounded(0)           # 0: whole training set for class means


@dataclass
class TrackingConfig:
    experiment: str = field(default=MISSING)
    uri: str = field(default=MISSING)             # "" : sqlite:///<repo>/mlflow.db


@dataclass
class Params:
    seed: int = bounded(0)
    data: DataConfig = field(default=MISSING)
    filters: FiltersConfig = field(default=MISSING)
    network: NetworkConfig = field(default=MISSING)
    variants: list[str] = field(default=MISSING)
    models: dict[str, VariantConfig] = field(default=MISSING)
    train: TrainConfig = field(default=MISSING)
    evaluate: EvaluateConfig = field(default=MISSING)
    tracking: TrackingConfig = field(default=MISSING)

    def variant(self, name: str) -> VariantConfig:
        if name not in self.models:
            raise ParamsError(f"variant {name!r} is not defined under 'models'; defined: {', '.join(self.models)}")
        return self.models[name]

    def to_dict(self) -> dict:
        return asdict(self)

    def stage_hash(self, variant: str | None = None) -> str:
        """SHA-256 of the resolved params that determine a variant's training run."""
        d = self.to_dict()
        d.pop("evaluate"), d.pop("tracking"), d.pop("variants")
        d["models"] = {variant: d["models"][variant]} if variant else d["models"]
        d["train"].pop("progress")
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()


def _type_name(tp) -> str:
    return getattr(tp, "__name__", str(tp))


def _convert(value, tp, key: str, meta, errors: list[str]):
    origin = typing.get_origin(tp)
    if origin is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return None if value is None else _convert(value, args[0], key, meta, errors)
    if is_dataclass(tp):
        if not isinstance(value, dict):
            errors.append(f"{key}: expected a mapping with keys {', '.join(f.name for f in fields(tp))}, "
                          f"got {value!r}")
            return None
        return _build(tp, value, key, errors)
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if not isinstance(value, list) or not value:
            errors.append(f"{key}: expected a non-empty list of {_type_name(item_tp)}, got {value!r}")
            return None
        return [_convert(v, item_tp, f"{key}[{i}]", {}, errors) for i, v in enumerate(value)]
    if origin is dict:
        _, item_tp = typing.get_args(tp)
        if not isinstance(value, dict) or not value:
            errors.append(f"{key}: expected a non-empty mapping, got {value!r}")
            return None
        return {str(k): _convert(v, item_tp, f"{key}.{k}", {}, errors) for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            errors.append(f"{key}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            errors.append(f"{key}: expected an integer, got {value!r}")
            return value
    elif tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            errors.append(f"{key}: expected a finite number, got {value!r}")
            return value
        value = float(value)
    elif tp is str:
        if not isinstance(value, str):
            errors.append(f"{key}: expected a string, got {value!r}")
            return value
    choices = meta.get("choices")
    if choices and value not in choices:
        errors.append(f"{key}: {value!r} is not valid; valid: {', '.join(choices)}")
    low, high = meta.get("min"), meta.get("max")
    if low is not None and (value < low or (meta.get("low_open") and value == low)):
        errors.append(f"{key}: {value!r} is out of range; must be {'>' if meta.get('low_open') else '>='} {low}")
    if high is not None and value > high:
        errors.append(f"{key}: {value!r} is out of range; must be <= {high}")
    return value


def _build(cls, data: dict, prefix: str, errors: list[str]):
    known = {f.name: f for f in fields(cls)}
    for key in data:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            errors.append(f"{prefix}{'.' if prefix else ''}{key}: unknown key{hint}; "
                          f"valid keys: {', '.join(known)}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, f in known.items():
        key = f"{prefix}{'.' if prefix else ''}{name}"
        if name not in data:
            if f.default is MISSING:
                errors.append(f"{key}: missing (required)")
                kwargs[name] = None
            else:
                kwargs[name] = f.default
            continue
        kwargs[name] = _convert(data[name], hints[name], key, f.metadata, errors)
    return cls(**kwargs)


def parse_params(data: dict, source: str = "params.yaml") -> Params:
    """Validate a params mapping and return typed :class:`Params`.

    Raises
    ------
    ParamsError
        Listing every unknown key, missing key, type error, out-of-range value and
        inconsistency, each with its dotted key.
    """
    errors: list[str] = []
    if not isinstance(data, dict):
        raise ParamsError(f"{source}: expected a mapping at the top level, got {type(data).__name__}")
    params = _build(Params, data, "", errors)
    if not errors:
        _check_consistency(params, errors)
    if errors:
        raise ParamsError(f"invalid parameters in {source}:\n  - " + "\n  - ".join(errors))
    return params


def _check_consistency(p: Params, errors: list[str]) -> None:
    for i, name in enumerate(p.variants):
        if name not in p.models:
            errors.append(f"variants[{i}]: {name!r} is not defined under 'models'; defined: {', '.join(p.models)}")
    if len(set(p.variants)) != len(p.variants):
        errors.append("variants: names must be unique")
    for name, v in p.models.items():
        valid = RESNET_NONLINEARITIES if v.arch == "resnet18" else SCAT_NONLINEARITIES
        if v.nonlinearity not in valid:
            errors.append(f"models.{name}.nonlinearity: {v.nonlinearity!r} is not valid for arch {v.arch}; "
                          f"valid: {', '.join(valid)}")
        if v.lr is not None and v.lr <= 0:
            errors.append(f"models.{name}.lr: must be > 0 or null")
    if any(w < 1 for w in p.network.widths):
        errors.append(f"network.widths: every width must be >= 1, got {p.network.widths}")
    if p.filters.factorize_from > len(p.network.widths):
        errors.append(f"filters.factorize_from: {p.filters.factorize_from} exceeds the number of blocks "
                      f"({len(p.network.widths)} network.widths)")
    if p.train.launcher == "python" and p.train.nproc != 1:
        errors.append("train.nproc: must be 1 with train.launcher=python (use launcher=torchrun for several processes)")
    if p.train.batch_size % p.train.nproc:
        errors.append(f"train.batch_size: {p.train.batch_size} is not divisible by train.nproc={p.train.nproc}")
    for name, v in p.models.items():
        if v.batch_size is not None and v.batch_size % p.train.nproc:
            errors.append(f"models.{name}.batch_size: {v.batch_size} is not divisible by train.nproc={p.train.nproc}")
    if p.data.name == "imagenet" and p.data.augment == "cifar":
        errors.append("data.augment: 'cifar' augmentation assumes 32x32 images; use 'imagenet' or 'none'")
