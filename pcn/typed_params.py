"""Strict conversion of a mapping (read from YAML) into nested dataclasses, collecting every problem.

A field's metadata states what is valid: :func:`choice` (one of the options), :func:`bounded`
(a number in a range, ends open or closed), :func:`listed` (a list, empty or not),
:func:`auto_or_count` (an integer >= 0 or ``auto``), and ``pattern`` (a regular expression a
string must match). :func:`build` reports unknown keys (with the closest valid one), missing
keys, wrong types, a scalar where a list is expected and out-of-range values, each with its
dotted key, and returns the dataclass. The params schema (:mod:`pcn.schema`) is built on it.
"""

from __future__ import annotations

import difflib
import math
import typing
from dataclasses import MISSING, field, fields, is_dataclass


def choice(*options, default=MISSING):
    return field(default=default, metadata={"choices": options})


def bounded(low=None, high=None, default=MISSING, low_open=False, high_open=False):
    return field(default=default, metadata={"min": low, "max": high, "low_open": low_open, "high_open": high_open})


def listed(default=MISSING, allow_empty=False):
    return field(default=default, metadata={"allow_empty": allow_empty})


def auto_or_count(default=MISSING):
    """An integer >= 0, or the string ``auto``."""
    return field(default=default, metadata={"auto": True, "min": 0})


def _type_name(tp) -> str:
    return getattr(tp, "__name__", str(tp))


def _check_scalar(value, tp, key: str, meta, errors: list[str]):
    """Type, choice, range and pattern checks of one scalar value."""
    if meta.get("auto") and value == "auto":
        return value
    if tp is bool:
        if not isinstance(value, bool):
            errors.append(f"{key}: expected true or false, got {value!r}")
        return value
    if tp is int or (meta.get("auto") and tp is not float):
        if isinstance(value, bool) or not isinstance(value, int):
            extra = " or 'auto'" if meta.get("auto") else ""
            errors.append(f"{key}: expected an integer{extra}, got {value!r}")
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
        pattern = meta.get("pattern")
        if pattern is not None and not pattern.fullmatch(value):
            errors.append(
                f"{key}: {value!r} is not a safe name (it is used in file paths, stage names and "
                f"commands): it must match {pattern.pattern}"
            )
    choices = meta.get("choices")
    if choices and value not in choices:
        errors.append(f"{key}: {value!r} is not valid; valid: {', '.join(choices)}")
    low, high = meta.get("min"), meta.get("max")
    if low is not None and (value < low or (meta.get("low_open") and value == low)):
        errors.append(f"{key}: {value!r} is out of range; must be {'>' if meta.get('low_open') else '>='} {low}")
    if high is not None and (value > high or (meta.get("high_open") and value == high)):
        errors.append(f"{key}: {value!r} is out of range; must be {'<' if meta.get('high_open') else '<='} {high}")
    return value


def _convert(value, tp, key: str, meta, errors: list[str]):
    origin = typing.get_origin(tp)
    if origin is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None and len(args) < len(typing.get_args(tp)):
            return None
        return _check_scalar(value, args[0], key, meta, errors)
    if is_dataclass(tp):
        if not isinstance(value, dict):
            errors.append(f"{key}: expected a mapping with keys {', '.join(f.name for f in fields(tp))}, got {value!r}")
            return None
        return build(tp, value, key, errors)
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if not isinstance(value, list):
            hint = f" (write [{value}])" if isinstance(value, (str, int, float)) and not isinstance(value, bool) else ""
            errors.append(f"{key}: expected a list of {_type_name(item_tp)}, got the scalar {value!r}{hint}")
            return None
        if not value and not meta.get("allow_empty"):
            errors.append(f"{key}: expected a non-empty list of {_type_name(item_tp)}, got []")
            return None
        return [_convert(v, item_tp, f"{key}[{i}]", {}, errors) for i, v in enumerate(value)]
    if origin is dict:
        _, item_tp = typing.get_args(tp)
        if not isinstance(value, dict) or not value:
            errors.append(f"{key}: expected a non-empty mapping, got {value!r}")
            return None
        return {str(k): _convert(v, item_tp, f"{key}.{k}", {}, errors) for k, v in value.items()}
    return _check_scalar(value, tp, key, meta, errors)


def build(cls, data: dict, prefix: str, errors: list[str]):
    known = {f.name: f for f in fields(cls)}
    for key in data:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            errors.append(f"{prefix}{'.' if prefix else ''}{key}: unknown key{hint}; valid keys: {', '.join(known)}")
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
