"""The pending journal of MLflow entries: what a stage could not send, kept for later, and replayed with care.

A journal is a JSON-lines file; each line is one entry ``{"kind", "run_id", "args", "tracking_uri"}``
written by one ``write`` call on a file opened for appending, so concurrent writers never interleave
halves of lines. A journal is untrusted input (anyone who can write the folder can plant one), so
:func:`replay` sends an entry only when

* it parses, and its kind and fields have the expected types;
* it is meant for the store being replayed to (its ``tracking_uri`` equals the client's): an entry never
  chooses where it goes;
* its run belongs to the expected experiment (when one is given): an entry never writes into another
  experiment's runs;
* an artifact it names is a regular file inside one of the allowed roots (the repository and the
  workspace the stage ran in): an entry never uploads a file from elsewhere;
* it cannot rewrite history: its run is one that this journal's own stage opened (the run's ``pcn.journal`` tag,
  set when pcn creates it, names this journal; for the pipeline's parent run, one of that stage's runs is its
  child), and that run is still open (RUNNING, or KILLED by pcn because its execution was gone, tag
  ``pcn.closed_abandoned``): a FINISHED or FAILED run is never changed from a journal;
* a tags entry sets no ``pcn.*`` or ``mlflow.parentRunId`` tag, and an artifact is one of the outputs that dvc.yaml
  declares for the run's stage (``dvc.stage`` tag): a journal never uploads ``.dvc/config``.

An entry that breaks a rule, or that the store refuses while the store answers, is **quarantined**:
moved to ``<journal>.quarantined.jsonl`` with the reason, and said so on stderr; the entries after it
are still sent. When the store does not answer, the entry and everything after it stay in the journal
for the next replay (nothing is lost, nothing is reordered).
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from pcn.files import append_bytes, write_text

#: Entry kinds and the types of their ``args``.
KINDS = {
    "metrics": (dict, (int, type(None)), int),
    "params": (dict,),
    "tags": (dict,),
    "artifact": (str, (str, type(None))),
    "dataset": (str, str, str, str, dict),
    "terminate": (str, str),
}


@dataclass
class ReplayReport:
    """What one replay did: entries sent, kept for later (store unreachable), quarantined (with reasons)."""

    sent: int = 0
    kept: int = 0
    quarantined: list[str] = field(default_factory=list)


def append(journal: Path, entry: dict) -> None:
    """Add one entry as one line, in a single ``write`` on a file opened for appending (owner-only), never through
    a planted link (:func:`pcn.files.append_bytes`)."""
    append_bytes(journal, (json.dumps(entry) + "\n").encode())


def quarantine_path(journal: Path) -> Path:
    return journal.with_name(journal.name.removesuffix(".jsonl") + ".quarantined.jsonl")


def entry_problem(entry, tracking_uri: str, roots: tuple[Path, ...]) -> str | None:
    """Why ``entry`` may not be sent to ``tracking_uri`` (module docstring), or None."""
    if not isinstance(entry, dict) or not isinstance(entry.get("args"), list):
        return "not a journal entry"
    kind, args = entry.get("kind"), entry["args"]
    if kind not in KINDS or len(args) != len(KINDS[kind]):
        return f"unknown entry kind {kind!r} or wrong arguments"
    if not all(isinstance(a, t) for a, t in zip(args, KINDS[kind])) or not isinstance(entry.get("run_id"), str):
        return f"{kind} entry with arguments of the wrong types"
    if entry.get("tracking_uri") != tracking_uri:
        return f"meant for another store ({entry.get('tracking_uri')!r}), not {tracking_uri!r}"
    if kind == "artifact":
        path = Path(args[0]).resolve()
        if not any(path.is_relative_to(root.resolve()) for root in roots):
            return f"artifact {args[0]!r} is outside {', '.join(str(r) for r in roots)}"
        if not path.is_file():
            return f"artifact {args[0]!r} is not a file (any more)"
    return None


#: Tags a journal entry may not set: those that decide which runs a journal may touch.
PROTECTED_TAGS = ("pcn.", "mlflow.parentRunId")
#: Run ids as MLflow makes them (hexadecimal), and journal names as pcn makes them (safe in a filter string).
RUN_ID = re.compile(r"[0-9a-f]{32}")
JOURNAL_NAME = re.compile(r"[A-Za-z0-9_.@-]+")
#: Statuses of a run a journal may still write to.
OPEN = "RUNNING"


def declared_outputs(root: Path, stage: str) -> list[str]:
    """The outputs that ``root``'s dvc.yaml declares for ``stage`` (``outs``, ``metrics``, ``plots``), as path
    prefixes relative to ``root`` (a templated part and what follows it dropped: ``results/train/``)."""
    import yaml

    try:
        definition = yaml.safe_load((root / "dvc.yaml").read_text())["stages"][stage]
    except (OSError, KeyError, TypeError, yaml.YAMLError):
        return []
    definition = definition.get("do", definition)
    prefixes = []
    for key in ("outs", "metrics", "plots"):
        for out in definition.get(key) or []:
            name = next(iter(out)) if isinstance(out, dict) else str(out)
            prefixes.append(name.split("${", 1)[0])
    return [p for p in prefixes if p]


def apply_entry(client, entry: dict) -> None:
    """Send one (checked) entry to the store."""
    from mlflow.entities import Metric, Param, RunTag

    kind, run_id, args = entry["kind"], entry["run_id"], entry["args"]
    if kind == "metrics":
        values, step, timestamp = args
        client.log_batch(run_id, metrics=[Metric(k, float(v), timestamp, step or 0) for k, v in values.items()])
    elif kind == "params":
        client.log_batch(run_id, params=[Param(k, str(v)) for k, v in args[0].items()])
    elif kind == "tags":
        client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in args[0].items()])
    elif kind == "artifact":
        client.log_artifact(run_id, args[0], args[1])
    elif kind == "dataset":
        from mlflow.entities import Dataset, DatasetInput, InputTag

        name, digest, source, context, profile = args
        dataset = Dataset(
            name=name,
            digest=digest[:36],
            source_type="local",
            source=json.dumps({"uri": source}),
            profile=json.dumps(profile),
        )
        client.log_inputs(run_id, [DatasetInput(dataset, [InputTag("mlflow.data.context", context)])])
    elif kind == "terminate":
        client.set_terminated(args[0], args[1])


def store_answers(client) -> bool:
    """Whether the store answers a request at all (so that a refused entry is the entry's fault)."""
    try:
        client.search_experiments(max_results=1)
    except Exception:
        return False
    return True


def _run_problem(client, entry: dict, experiment_id: str | None, journal: Path, roots) -> str | None:
    """Why the entry's run is not one this journal may write to (module docstring), or None."""
    run_id = entry["args"][0] if entry["kind"] == "terminate" else entry["run_id"]
    if not RUN_ID.fullmatch(run_id) or not JOURNAL_NAME.fullmatch(journal.name):
        return f"run id {run_id!r} or journal name {journal.name!r} is not one pcn makes"
    run = client.get_run(run_id)
    if experiment_id is not None and run.info.experiment_id != experiment_id:
        return f"run {run_id} belongs to experiment {run.info.experiment_id}, not {experiment_id}"
    tags = run.data.tags
    if tags.get("pcn.kind") == "pipeline":
        children = f"tags.`pcn.journal` = '{journal.name}' and tags.`mlflow.parentRunId` = '{run_id}'"
        if not client.search_runs([run.info.experiment_id], children, max_results=1):
            return f"parent run {run_id} has no run of journal {journal.name}"
    elif tags.get("pcn.journal") != journal.name:
        return f"run {run_id} was not opened by the stage of journal {journal.name}"
    if run.info.status != OPEN and not (run.info.status == "KILLED" and tags.get("pcn.closed_abandoned")):
        return f"run {run_id} is {run.info.status}: a finished run is not changed from a journal"
    if entry["kind"] == "tags" and any(k.startswith(PROTECTED_TAGS) for k in entry["args"][0]):
        return f"tags entry sets a protected tag ({', '.join(sorted(entry['args'][0]))[:200]})"
    if entry["kind"] == "artifact":
        return _artifact_problem(Path(entry["args"][0]), tags.get("dvc.stage", ""), roots)
    return None


def _artifact_problem(path: Path, stage: str, roots) -> str | None:
    """Why ``path`` is not one of the outputs dvc.yaml declares for ``stage`` under one of ``roots``, or None."""
    path = path.resolve()
    for root in roots:
        root = Path(root).resolve()
        if path.is_relative_to(root):
            relative = path.relative_to(root).as_posix()
            if any(relative == p or relative.startswith(p.rstrip("/") + "/") for p in declared_outputs(root, stage)):
                return None
    return f"artifact {str(path)!r} is not an output that dvc.yaml declares for stage {stage!r}"


def replay(
    journal: Path, client, roots: tuple[Path, ...], experiment_id: str | None = None, answers=store_answers
) -> ReplayReport:
    """Send the entries of ``journal`` that pass the rules (module docstring), in order; quarantine the others.

    Entries not sent because the store does not answer stay in the journal; the journal is removed
    when nothing is left in it.
    """
    journal = Path(journal)
    report = ReplayReport()
    lines = [line for line in journal.read_text(errors="replace").splitlines() if line.strip()]
    quarantined: list[dict] = []
    for i, line in enumerate(lines):
        try:
            entry = json.loads(line)
        except ValueError:
            entry, problem = None, "not valid JSON (a truncated line?)"
        else:
            problem = entry_problem(entry, client.tracking_uri, roots)
        if problem is None:
            try:
                problem = _run_problem(client, entry, experiment_id, journal, roots)
                if problem is None:
                    apply_entry(client, entry)
                    report.sent += 1
                    continue
            except Exception as exc:
                if not answers(client):  # down: keep this entry and the rest
                    report.kept = len(lines) - i
                    break
                problem = f"refused by the store ({type(exc).__name__}: {str(exc)[:200]})"
        quarantined.append({"line": line, "reason": problem})
        report.quarantined.append(problem)
    kept = lines[len(lines) - report.kept :] if report.kept else []
    if quarantined:
        target = quarantine_path(journal)
        for q in quarantined:
            append(target, q)
        print(
            f"warning: {len(quarantined)} MLflow journal entries of {journal} were not sent and were moved to "
            f"{target}: {'; '.join(sorted(set(report.quarantined)))[:600]}",
            file=sys.stderr,
        )
    if kept:
        write_text(journal, "".join(line + "\n" for line in kept))
    else:
        journal.unlink(missing_ok=True)
    return report
