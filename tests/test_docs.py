"""The README and docs/ stay true: every command in them runs as written, and every relative link points to a file.

The commands are those of the fenced ``bash``, ``sh`` and ``console`` blocks of README.md and docs/*.md (in a
``console`` block, the lines that start with ``$``), split at ``&&``, ``||``, ``;`` and ``|``. Each is checked
without running it:

* ``pcn ...`` parses with the real parser of its subcommand (:func:`pcn.cli.main.parser_for`); the options
  that ``pcn preset`` passes on to ``dvc exp run`` (after ``--``) are checked as a ``dvc`` command;
* ``dvc ...`` parses with DVC's own command-line parser; ``-S key=value`` names a key of params.yaml (DVC would
  silently add a misspelled one) and a stage target names a stage of dvc.yaml;
* ``mlflow ...`` names an existing subcommand of MLflow's CLI and its options parse; an ``MLFLOW_*`` variable set
  before a command is one that MLflow reads;
* ``python <file>`` names an existing file that accepts the options given; ``python -m <module>`` an importable
  module; ``pip install -e '.[extra]'`` an extra of pyproject.toml; ``git`` and ``ruff`` an existing subcommand;
* a project file that a command names (``presets/*.yaml``, ``sweeps/*.yaml``, ``bench/*.py``, ...) exists.

A command that cannot be checked this way is listed in :data:`UNCHECKED` with the reason. Also: every relative
link of those pages points to an existing file (and a ``#heading`` to an existing heading), the ``python`` blocks
compile, and the README keeps its shape: at most 200 lines, its first code block the two commands (a CI script
reads the test command from there), a link to every page of docs/.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import importlib.util
import io
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT

README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS]
#: The pages the README's documentation section links to (each a topic).
DOC_PAGES = ["pipeline", "mlflow", "scale", "reliability", "security", "fidelity", "benchmarks", "results"]
#: README's first code block: set up and run the pipeline, then the test command (read by CI).
README_COMMANDS = [
    "python3 -m venv .venv && . .venv/bin/activate && pip install -e '.[dev]' && dvc repro && pcn baseline",
    ".venv/bin/python -m pytest -q",
]
MAX_README_LINES = 200
#: Commands that are not checked, with the reason.
UNCHECKED = {
    ". .venv/bin/activate": "activates the environment that the command before it creates",
}
#: Folders of the project whose files a command may name: such a file must exist.
PROJECT_FOLDERS = ("bench/", "docs/", "pcn/", "presets/", "results/", "stages/", "studies/", "sweeps/", "tests/")
SHELL_OPERATORS = {"&&", "||", ";", "|"}
FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[\w-]*)[^\n]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.M | re.S)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def code_blocks(path: Path) -> list[tuple[str, int, list[str]]]:
    """``(language, line number of the opening fence, lines)`` of every fenced block of ``path``, dedented."""
    text = path.read_text()
    blocks = []
    for match in FENCE.finditer(text):
        indent = len(match["indent"])
        lines = [line[indent:] for line in match["body"].splitlines()]
        blocks.append((match["lang"], text.count("\n", 0, match.start()) + 1, lines))
    return blocks


def block_commands(lang: str, lines: list[str]) -> list[str]:
    """The command lines of a shell block: continuation lines joined, comments and blank lines dropped."""
    commands, current = [], ""
    for line in lines:
        if lang == "console":
            if not current and not line.startswith("$"):
                continue  # output
            if not current:
                line = line[1:].lstrip()
        current += line
        if current.endswith("\\"):
            current = current[:-1] + " "
            continue
        if current.strip() and not current.lstrip().startswith("#"):
            commands.append(current.strip())
        current = ""
    return commands


def documented_commands() -> list[tuple[str, str]]:
    """``(where, command)`` of every shell command of the README and docs/, ``where`` as ``page:line``."""
    found = []
    for page in PAGES:
        for lang, line, lines in code_blocks(page):
            if lang in ("bash", "sh", "console"):
                for command in block_commands(lang, lines):
                    found.append((f"{page.relative_to(ROOT)}:{line}", command))
    return found


def simple_commands(command: str) -> list[list[str]]:
    """The words of each simple command of a shell command line (split at ``&&``, ``||``, ``;``, ``|``)."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    parts, words = [], []
    for token in lexer:
        if token in SHELL_OPERATORS:
            parts.append(words)
            words = []
        else:
            words.append(token)
    parts.append(words)
    return [p for p in parts if p]


# --- checkers: each takes the words after the program's name and raises AssertionError with the reason ---


@contextlib.contextmanager
def quiet():
    """Keep a parser's usage and help text out of the test's output."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        yield


def check_pcn(args: list[str]) -> None:
    from pcn.cli.main import SUBCOMMANDS, parser_for

    words, extra = (args[: args.index("--")], args[args.index("--") + 1 :]) if "--" in args else (args, [])
    assert words, "pcn without a subcommand"
    if words[0] in ("-h", "--help"):
        return
    assert words[0] in SUBCOMMANDS, f"pcn has no subcommand {words[0]!r} (it has: {', '.join(SUBCOMMANDS)})"
    parser, _ = parser_for(words[0])
    try:
        with quiet():
            parser.parse_args(words[1:])
    except SystemExit as exc:
        assert exc.code == 0, f"pcn {words[0]} does not accept {words[1:]}"
    if extra:
        assert words[0] == "preset", f"pcn {words[0]} passes nothing after --"
        check_dvc(["exp", "run", *extra])


@functools.cache
def params() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


@functools.cache
def stage_names() -> set[str]:
    return set(yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"])


def check_param_key(assignment: str) -> None:
    key = assignment.split("=", 1)[0].split(":")[-1]
    node, parts = params(), key.split(".")
    for i, part in enumerate(parts):
        if i == 2 and parts[0] == "models":
            return  # a variant's optional settings (lr, epochs, ...): the schema checks them
        assert isinstance(node, dict) and part in node, f"-S {assignment}: params.yaml has no key {key!r}"
        node = node[part]


def check_dvc(args: list[str]) -> None:
    from dvc.cli import DvcParserError, parse_args

    try:
        with quiet():
            namespace = parse_args(args)
    except (DvcParserError, SystemExit) as exc:
        raise AssertionError(f"DVC's parser refuses dvc {' '.join(args)}") from exc
    for assignment in getattr(namespace, "set_param", None) or []:
        check_param_key(assignment)
    if args[:1] == ["repro"] or args[:2] == ["exp", "run"]:
        for target in getattr(namespace, "targets", None) or []:
            stage = target.split("@")[0]
            assert stage in stage_names() or "*" in stage, f"dvc.yaml has no stage {stage!r}"


def check_mlflow(args: list[str]) -> None:
    import click
    from mlflow.cli import cli

    command, name = cli, "mlflow"
    while isinstance(command, click.Group):
        assert args, f"{name} needs a subcommand"
        sub = command.get_command(click.Context(command), args[0])
        assert sub is not None, f"{name} has no subcommand {args[0]!r}"
        command, name, args = sub, f"{name} {args[0]}", args[1:]
    try:
        with quiet():
            command.make_context(name, list(args))
    except click.ClickException as exc:
        raise AssertionError(f"{name} refuses {args}: {exc.format_message()}") from exc


def script_options(script: Path) -> set[str]:
    """The options a script's argparse parsers declare, in the script and in the modules it imports from its
    folder (a stage's ``--variant`` and ``--seed`` are declared in stages/stage_inputs.py)."""
    options, files, seen = set(), [script], set()
    while files:
        path = files.pop()
        if path in seen or not path.is_file():
            continue
        seen.add(path)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "add_argument":
                options.update(a.value for a in node.args if isinstance(a, ast.Constant) and str(a.value)[:1] == "-")
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                files.append(script.parent / f"{node.module}.py")
    return options | {"-h", "--help"}


def check_python(args: list[str]) -> None:
    assert args, "python without a script"
    if args[0] == "-m":
        assert len(args) > 1, "python -m without a module"
        try:
            found = importlib.util.find_spec(args[1]) is not None
        except ModuleNotFoundError:  # its package does not exist
            found = False
        assert found, f"no module {args[1]}"
        return
    script = ROOT / args[0]
    assert script.is_file(), f"no file {args[0]}"
    accepted = script_options(script)
    given = {word.split("=")[0] for word in args[1:] if word.startswith("-")}
    assert given <= accepted, f"{args[0]} does not accept {sorted(given - accepted)}"


def check_pip(args: list[str]) -> None:
    tomllib = pytest.importorskip("tomllib")
    assert args[:1] == ["install"], f"pip {args[:1]}: only pip install is expected"
    for word in args[1:]:
        if word.startswith("."):
            folder, _, extras = word.partition("[")
            project = tomllib.loads((ROOT / folder / "pyproject.toml").read_text())["project"]
            for extra in filter(None, extras.rstrip("]").split(",")):
                assert extra in project.get("optional-dependencies", {}), f"pyproject.toml has no extra {extra!r}"


@functools.cache
def git_commands() -> set[str]:
    listed = subprocess.run(["git", "--list-cmds=main,others,alias"], capture_output=True, text=True, check=True)
    return set(listed.stdout.split())


def check_git(args: list[str]) -> None:
    assert args and args[0] in git_commands(), f"git has no subcommand {args[:1]}"


def check_ruff(args: list[str]) -> None:
    assert args, "ruff without a subcommand"
    ruff = Path(sys.executable).parent / "ruff"
    shown = subprocess.run([str(ruff), args[0], "--help"], capture_output=True, text=True)
    assert shown.returncode == 0, f"ruff has no subcommand {args[0]!r}"
    for word in args[1:]:
        assert not word.startswith("--") or word.split("=")[0] in shown.stdout, f"ruff {args[0]} has no {word}"


def check_executable(program: str) -> None:
    path = ROOT / program
    assert path.is_file() and os.access(path, os.X_OK), f"{program} is not an executable file of the project"


CHECKERS = {
    "pcn": check_pcn,
    "dvc": check_dvc,
    "mlflow": check_mlflow,
    "python": check_python,
    "python3": check_python,
    "pip": check_pip,
    "git": check_git,
    "ruff": check_ruff,
}


def check_environment(assignment: str) -> None:
    name = assignment.split("=", 1)[0]
    if name.startswith("MLFLOW_"):
        import mlflow.environment_variables as known

        assert hasattr(known, name), f"MLflow reads no variable {name}"


def check_command(command: str) -> None:
    for words in simple_commands(command):
        if " ".join(words) in UNCHECKED:
            continue
        while words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0]):
            check_environment(words.pop(0))
        program, args = words[0], words[1:]
        for word in args:
            if word.startswith(PROJECT_FOLDERS) and not any(c in word for c in "*?[$<"):
                assert (ROOT / word).exists(), f"{word} does not exist"
        name = program.removeprefix(".venv/bin/")
        if name in CHECKERS:
            CHECKERS[name](args)
        elif program.startswith(PROJECT_FOLDERS):
            check_executable(program)
        else:
            raise AssertionError(f"no check for {program!r}: add one, or list the command in UNCHECKED with why")


COMMANDS = documented_commands()


@pytest.mark.parametrize("where, command", COMMANDS, ids=[f"{where} {command[:50]}" for where, command in COMMANDS])
def test_documented_command_runs_as_written(where, command):
    check_command(command)


def test_commands_are_found_in_every_page_that_has_them():
    pages = {where.split(":")[0] for where, _ in COMMANDS}
    assert {"README.md", "docs/pipeline.md", "docs/mlflow.md", "docs/scale.md"} <= pages, pages
    assert any(c.startswith("pcn preset") for _, c in COMMANDS) and any(c.startswith("dvc exp") for _, c in COMMANDS)


def test_unchecked_commands_are_still_documented():
    documented = {" ".join(words) for _, command in COMMANDS for words in simple_commands(command)}
    assert set(UNCHECKED) <= documented, set(UNCHECKED) - documented


@pytest.mark.parametrize(
    "command",
    [
        "pcn preset presets/translated.yaml --dry-run",  # no such option
        "pcn sweep sweeps/translated-lr.yaml run",  # queue | table
        "pcn preset presets/missing.yaml",  # no such file
        "pcn preset presets/cifar10.yaml -- --queeu",  # dvc exp run has no --queeu
        "dvc exp shwo",
        "dvc exp run -S train.learning_rate=0.1",  # DVC would add the misspelled key
        "dvc repro trian@modulus-0",
        "mlflow ui --prot 5000",
        "MLFLOW_TRACKING_UIR=sqlite:///x.db mlflow experiments search",
        "python stages/preset.py presets/cifar10.yaml",  # moved to pcn preset
        "python bench/epoch.py --fast",
        "python -m pcn.pipeline.tracking resync",  # moved to pcn resync
        "pip install -e '.[test]'",
        "git chekout .",
        "make all",
    ],
)
def test_the_checks_catch_a_broken_command(command):
    with pytest.raises(AssertionError):
        check_command(command)


def test_readme_is_short_and_opens_with_the_two_commands():
    lines = README.read_text().splitlines()
    assert len(lines) <= MAX_README_LINES, f"README.md has {len(lines)} lines; move details to docs/"
    lang, _, first = code_blocks(README)[0]
    assert lang == "bash" and [line for line in first if line.strip()] == README_COMMANDS, first


def test_python_examples_compile():
    for page in PAGES:
        for lang, line, lines in code_blocks(page):
            if lang == "python":
                compile("\n".join(lines), f"{page.relative_to(ROOT)}:{line}", "exec")


def without_code(text: str) -> str:
    return FENCE.sub("", text)


def anchors(page: Path) -> set[str]:
    """GitHub's anchors of the headings of ``page``."""
    slugs, counts = set(), {}
    for heading in re.findall(r"(?m)^#{1,6}[ \t]+(.+?)[ \t]*#*$", without_code(page.read_text())):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        slugs.add(slug if slug not in counts else f"{slug}-{counts[slug]}")
        counts[slug] = counts.get(slug, 0) + 1
    return slugs


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_relative_links_point_to_existing_files(page):
    broken = []
    for target in LINK.findall(without_code(page.read_text())):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):
            continue  # http:, https:, mailto:
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            broken.append(target)
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{target} (no such heading)")
    assert not broken, broken


def test_readme_links_every_docs_page():
    linked = set(LINK.findall(README.read_text()))
    missing = [name for name in DOC_PAGES if f"docs/{name}.md" not in linked]
    assert not missing, missing
    assert {p.stem for p in DOCS} >= set(DOC_PAGES)
