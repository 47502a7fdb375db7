"""Nested mappings: flattened to dotted keys, and what differs between two, named readably."""

from pcn.mappings import changed_keys, differences, flatten


def test_flatten():
    nested = {"a": {"b": 1, "c": [1, 2]}, "d": "x"}
    assert flatten(nested) == {"a.b": 1, "a.c": [1, 2], "d": "x"}
    assert flatten(nested, lists_as_json=True) == {"a.b": 1, "a.c": "[1, 2]", "d": "x"}


def test_what_differs():
    before = {"params": {"train": {"lr": 0.1, "epochs": 3}}, "code": {"a.py": "1"}, "data": "d"}
    after = {"params": {"train": {"lr": 0.2, "epochs": 3}, "seed": 1}, "code": {"a.py": "1"}, "data": "e"}
    assert changed_keys(before["params"], after["params"]) == ["seed", "train.lr"]
    assert differences(before, after) == ["data", "params: seed, train.lr"]
    many = {"params": {f"k{i}": i for i in range(8)}}
    assert differences({"params": {}}, many) == ["params: k0, k1, k2, k3, k4, k5 ..."]
