"""The library's layout: layers without circles or upward imports, leaves (the names, the schema) that import
nothing of the implementation, and no module of pcn/ that touches the process environment."""

import ast
import re
import subprocess
import sys

import pytest

from conftest import ROOT

#: Layers, lowest first: a module may import from its own layer or a lower one, never a higher one.
LAYERS = {
    "pcn": 0,
    "pcn.files": 0,
    "pcn.typed_params": 0,
    "pcn.schema": 0,
    "pcn.names": 0,
    "pcn.layout": 0,
    "pcn.mappings": 0,
    "pcn.nn": 1,
    "pcn.data": 1,
    "pcn.train": 2,
    "pcn.analysis": 3,
    "pcn.pipeline": 4,
    "pcn.tracking": 5,
    "pcn.cli": 6,  # the command line: the one package that reads argv and the environment and starts processes
}


def module_name(path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path) -> set[str]:
    """Every ``pcn`` module ``path`` imports, at module level or inside a function."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.startswith("pcn"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("pcn"):
            for alias in node.names:  # `from pcn.nn import resnet` imports a module
                full = f"{node.module}.{alias.name}"
                is_module = (ROOT / full.replace(".", "/")).with_suffix(".py").is_file()
                names.add(full if is_module else node.module)
    return names


MODULES = {module_name(p): p for p in sorted((ROOT / "pcn").rglob("*.py"))}
GRAPH = {name: {m for m in imported_modules(path) if m in MODULES and m != name} for name, path in MODULES.items()}


def layer(module: str) -> int:
    parts = module.split(".")
    for i in range(len(parts), 0, -1):
        if ".".join(parts[:i]) in LAYERS:
            return LAYERS[".".join(parts[:i])]
    raise AssertionError(f"{module} is in no layer: add it to LAYERS")


def test_every_module_is_in_a_layer():
    for name in MODULES:
        layer(name)


def test_no_import_goes_up_a_layer():
    upward = [f"{a} -> {b}" for a, deps in GRAPH.items() for b in deps if layer(b) > layer(a)]
    assert not upward, upward


def test_nn_and_data_are_independent():
    """The networks are usable without the data code, and the data code without the networks."""
    crossing = [
        f"{a} -> {b}" for a, deps in GRAPH.items() for b in deps if {a.split(".")[1], b.split(".")[1]} == {"nn", "data"}
    ]
    assert not crossing, crossing


def test_no_import_circle():
    state, cycles = {}, []

    def visit(node, stack):
        state[node] = "open"
        for dep in sorted(GRAPH[node]):
            if state.get(dep) == "open":
                cycles.append(stack[stack.index(dep) :] + [dep] if dep in stack else [node, dep])
            elif dep not in state:
                visit(dep, stack + [dep])
        state[node] = "done"

    for name in MODULES:
        if name not in state:
            visit(name, [name])
    assert not cycles, cycles


def test_the_graph_test_sees_real_edges():
    """The checks above would pass on an empty graph: make sure they do not look at one."""
    assert "pcn.nn.layers" in GRAPH["pcn.nn.fused_projection"]
    assert "pcn.schema" in GRAPH["pcn.pipeline.build"]
    assert "pcn.names" in GRAPH["pcn.schema"] and "pcn.names" in GRAPH["pcn.nn.nonlinearities"]
    assert GRAPH["pcn.schema"] <= {"pcn.files", "pcn.typed_params", "pcn.names"}
    assert GRAPH["pcn.names"] == set()


@pytest.mark.parametrize("name", sorted(m for m in MODULES if layer(m) < LAYERS["pcn.cli"]))
def test_no_module_reads_or_writes_the_environment(name):
    source = MODULES[name].read_text()
    assert not re.search(r"\bos\.(environ|getenv|putenv|unsetenv)\b|\bsys\.path\b", source), name
    assert not re.search(r"matplotlib\.use\(|import matplotlib\.pyplot|\bos\.umask\(0\)", source), name  # global state


def test_training_imports_neither_kymatio_nor_matplotlib():
    """Every training imports pcn.pipeline.build (and the modules that draw its curves): kymatio (the Scat
    baseline) and matplotlib (figures) are imported by the functions that use them, not with these modules.
    The check itself is shown to see them: drawing a colour afterwards imports matplotlib."""
    script = """
import sys
import pcn.pipeline.build, pcn.analysis.plots, pcn.train.curves, pcn.nn.scattering
loaded = sorted({m.split(".")[0] for m in sys.modules} & {"kymatio", "matplotlib"})
pcn.analysis.plots.curve_colors(2)
print(loaded, "matplotlib" in sys.modules)
"""
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[] True"
