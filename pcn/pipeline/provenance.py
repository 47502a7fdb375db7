"""What a stage's results follow from: the params it reads and the code it runs.

* **Code identity.** A stage's code is its script and every file of the project its imports reach,
  transitively (:func:`source_files`). DVC tracks it as dvc.yaml lists it (:func:`code_dependencies`: the
  subpackages of ``pcn`` as folders, top-level modules and stage helpers as files; a test checks dvc.yaml
  against it), and the training's resume key hashes it (:func:`code_digest`). What only changes what a
  stage sends to MLflow (:data:`NOT_RESULTS`: the package :mod:`pcn.tracking` and the stage helper that opens
  MLflow runs) is nobody's dependency, and neither are its imports.
* **The refuse-if-changed check.** :class:`Provenance` takes the params a stage reads and its code when the
  stage starts; :meth:`Provenance.refuse_if_changed`, called before the results are written, raises
  :class:`ProvenanceChanged` if either changed meanwhile, so that dvc.lock never credits values the results
  were not computed with.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from pcn.files import file_digest
from pcn.mappings import differences
from pcn.schema import Params, load_params_file

#: Files and folders (relative to the project) that change how a stage process runs (environment defaults) or
#: what it sends to MLflow, not what it writes.
NOT_RESULTS = ("pcn/tracking", "stages/mlflow_run.py", "stages/process_defaults.py")


def _excluded(relative: str) -> bool:
    return any(relative == x or relative.startswith(f"{x}/") for x in NOT_RESULTS)


@lru_cache(maxsize=None)
def _imported_names(source: str, filename: str) -> frozenset[str]:
    """Every absolute module name that ``source`` imports (``import a.b``, ``from a import b``: ``a``, ``a.b``).

    Cached by the source text itself: a stage takes its code identity three times (:meth:`Provenance.take`,
    twice :meth:`Provenance.refuse_if_changed`), and parsing is what costs (about 0.4 s for a training's
    closure); a file that changed in between is parsed again.
    """
    names = set()
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return frozenset(names)


def _local_imports(root: Path, path: Path) -> set[Path]:
    """The project's own files that ``path`` imports: ``pcn`` modules (with the ``__init__.py`` of every package
    on the way) and the helpers in ``stages/``."""
    found = set()
    for name in _imported_names(path.read_text(), str(path)):
        parts = name.split(".")
        if parts[0] == "pcn":
            for i in range(1, len(parts) + 1):
                package = root.joinpath(*parts[:i])
                if (package / "__init__.py").is_file():
                    found.add(package / "__init__.py")
                elif package.with_suffix(".py").is_file():
                    found.add(package.with_suffix(".py"))
        elif len(parts) == 1 and (root / "stages" / f"{name}.py").is_file():
            found.add(root / "stages" / f"{name}.py")
    return found


def source_files(root: Path, script: str) -> list[str]:
    """Project-relative paths of ``script`` and every project file it imports, transitively (not through
    :data:`NOT_RESULTS`, whose imports are not the stage's)."""
    root = Path(root).resolve()
    todo, seen = [root / script], set()
    while todo:
        path = todo.pop().resolve()
        if path in seen:
            continue
        seen.add(path)
        if not _excluded(path.relative_to(root).as_posix()):
            todo.extend(_local_imports(root, path) - seen)
    return sorted(p.relative_to(root).as_posix() for p in seen)


def code_dependencies(root: Path, script: str) -> list[str]:
    """The stage's code dependencies as dvc.yaml lists them: its script and stage helpers (files), and each part
    of the library its imports reach: a subpackage of ``pcn`` as a folder (``pcn/nn``), a top-level module as a
    file (``pcn/schema.py``, ``pcn/__init__.py``)."""
    deps = set()
    for name in source_files(root, script):
        if _excluded(name):
            continue
        parts = name.split("/")
        deps.add("/".join(parts[:2]) if parts[0] == "pcn" and len(parts) > 2 else name)
    return sorted(deps)


def code_digest(root: Path, script: str) -> dict[str, str]:
    """``{file: sha256}`` of every Python file of :func:`code_dependencies` (all files of a folder, as DVC hashes
    them), so that a changed resume key names the file that changed."""
    digests = {}
    for dep in code_dependencies(root, script):
        path = Path(root) / dep
        for file in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            digests[file.relative_to(root).as_posix()] = file_digest(file)
    return digests


class ProvenanceChanged(RuntimeError):
    """The params or the code a stage started with changed while it ran (the message says what)."""


@dataclass
class Provenance:
    """The params a stage reads (``view(params)``) and its code (``script`` under ``root``), taken at
    :meth:`take`; :meth:`refuse_if_changed` compares them with ``params_path`` and the code now."""

    stage: str
    root: Path
    script: str
    params_path: Path
    view: Callable[[Params], dict]
    taken: dict = field(default_factory=dict)

    @classmethod
    def take(cls, stage: str, root: Path, script: str, params_path: Path, view, params: Params) -> Provenance:
        provenance = cls(stage, Path(root), script, Path(params_path), view)
        provenance.taken = {"params": view(params), "code": code_digest(root, script)}
        return provenance

    def now(self) -> dict:
        return {"params": self.view(load_params_file(self.params_path)), "code": code_digest(self.root, self.script)}

    def refuse_if_changed(self, consequence: str = "Its results are not written") -> None:
        """Raise :class:`ProvenanceChanged` naming what changed since :meth:`take` (``consequence`` says what
        becomes of the results)."""
        changed = differences(self.taken, self.now())
        if changed:
            raise ProvenanceChanged(
                f"{self.stage}: changed while it ran: {'; '.join(changed)}. {consequence} (dvc.lock would credit "
                "values they were not computed with); run dvc repro again"
            )
