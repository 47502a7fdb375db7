"""The code stays readable: no module over 400 lines, no function over 60 lines, unless a reason is stated here."""

import ast

import pytest

from conftest import ROOT

MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
#: Exceptions, each with its reason: none at present.
ALLOWED: dict[str, str] = {}

FILES = sorted(p for folder in ("pcn", "stages", "bench") for p in (ROOT / folder).rglob("*.py"))


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_module_and_function_sizes(path):
    name = str(path.relative_to(ROOT))
    lines = path.read_text().splitlines()
    if name not in ALLOWED:
        assert len(lines) <= MAX_MODULE_LINES, f"{name} has {len(lines)} lines"
    for node in ast.walk(ast.parse("\n".join(lines))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            size = node.end_lineno - node.lineno + 1
            if f"{name}:{node.name}" not in ALLOWED:
                assert size <= MAX_FUNCTION_LINES, f"{name}:{node.name} has {size} lines"
