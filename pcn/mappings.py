"""Nested mappings (params, resume-key parts, metrics): flattened to dotted keys, and what differs between two."""

from __future__ import annotations

import json


def flatten(d: dict, prefix: str = "", lists_as_json: bool = False) -> dict[str, object]:
    """``{"a": {"b": 1}} -> {"a.b": 1}``; with ``lists_as_json``, lists and tuples become JSON strings (as MLflow
    params must be strings)."""
    out = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}.", lists_as_json))
        elif lists_as_json and isinstance(value, (list, tuple)):
            out[name] = json.dumps(value)
        else:
            out[name] = value
    return out


def changed_keys(a: dict, b: dict) -> list[str]:
    """Dotted paths of the entries that differ between two nested mappings."""
    a, b = flatten(a), flatten(b)
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def differences(before: dict, after: dict) -> list[str]:
    """What differs between two ``{part: value}`` mappings, readably: ``params: train.lr``, ``code``, ``data``
    (at most six keys of a part are named)."""
    out = []
    for name in sorted(set(before) | set(after)):
        a, b = before.get(name), after.get(name)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            keys = changed_keys(a, b)
            out.append(f"{name}: {', '.join(keys[:6])}{' ...' if len(keys) > 6 else ''}")
        else:
            out.append(name)
    return out
