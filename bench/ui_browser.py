"""Does the MLflow UI URL the pipeline prints open, in a real browser, on the numbers?

Serves a store with ``mlflow ui`` (docs/mlflow.md's command, free loopback port, always stopped), loads
:func:`pcn.tracking.ui.runs_table_url` in headless Chromium with a fresh profile (a first-time user), takes the
DOM once the React app has rendered (``--dump-dom`` under a ``--virtual-time-budget``, retried with a larger budget
until the runs table is there) and checks the rendered runs table (AG Grid cells, keyed by run id).
Checks: ``test_error_column`` (a ``test_error`` header is shown); ``one_row_per_train_run`` (the rows are the
store's ``train@...`` runs read with ``MlflowClient``, one each, flat, and "N matching runs" is their number);
``test_error_values`` (each row shows its ``metrics.test_error`` without a click, at the UI's own rounding,
``Utils.formatMetric``: 3 decimals under 10, 2 under 100, 1 above); ``sorted_by_test_error`` (ascending);
``no_best_test_error_column`` (the test-selected metric is not visible); ``model_training_mode`` (no GenAI-only
side-bar entry: "Training runs", "Sessions", "Judges", "Agent versions"; "Model registry" shown; heading "Runs").
The JSON result (each check and what was seen, the URL, the Chromium and MLflow versions) goes to ``--out``;
``--screenshot`` saves what a user sees. Exit status 1 when a check fails. ``mlflow ui`` may migrate an old
store's schema: point ``--store`` at a copy to keep the original.
Usage: ``python bench/ui_browser.py --store /tmp/copy/mlflow.db --screenshot bench/out/ui_browser.png``.
"""

from __future__ import annotations

import argparse
import html.parser
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

HEADLINE_COLUMN = "metrics.`test_error`"
#: Side-bar entries only the GenAI mode shows, and one only the model-training mode shows (MLflow 3.17).
GENAI_ONLY = ("Training runs", "Sessions", "Judges", "Agent versions")
MODEL_TRAINING_ONLY = ("Model registry",)
VOID_TAGS = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


def format_metric(value: float) -> str:
    """The UI's rounding of a metric (``Utils.formatMetric`` of MLflow's JS bundle)."""

    def js(x: float) -> str:  # JavaScript's Number#toString for these values
        return str(int(x)) if float(x).is_integer() else repr(x)

    if value == 0:
        return "0"
    if abs(value) < 0.001:
        mantissa, exponent = f"{value:.3e}".split("e")
        return f"{mantissa}e{int(exponent):+d}"
    if abs(value) < 10:
        return js(round(value * 1000) / 1000)
    if abs(value) < 100:
        return js(round(value * 100) / 100)
    return js(round(value * 10) / 10)


class GridParser(html.parser.HTMLParser):
    """The runs table of a dumped DOM: column headers, and each row's cells (``row-id`` = run id)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, bool]] = []  # (tag, hidden)
        self.headers: list[dict] = []  # {"col_id", "text", "hidden"}
        self.rows: dict[str, dict] = {}  # row-id -> {"index": int, "cells": {col-id: text}}
        self.headings: list[str] = []  # h1/h2 texts
        self.links: list[str] = []  # <a> texts (the side bar)
        self.texts: list[str] = []
        self._row: str | None = None
        self._row_depth = 0
        self._capture: list[tuple[int, list[str], object]] = []  # (depth, text parts, sink)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        hidden = (self.stack[-1][1] if self.stack else False) or "ag-hidden" in (a.get("class") or "").split()
        hidden = hidden or "display: none" in (a.get("style") or "")
        if tag in VOID_TAGS:
            return
        self.stack.append((tag, hidden))
        depth = len(self.stack)
        if a.get("role") == "row" and a.get("row-id"):
            self._row, self._row_depth = a["row-id"], depth
            row = self.rows.setdefault(a["row-id"], {"index": int(a.get("row-index") or -1), "cells": {}})
            row["index"] = int(a.get("row-index") or row["index"])
        elif a.get("role") == "gridcell" and self._row and a.get("col-id") and not hidden:
            self._capture.append((depth, [], ("cell", self._row, a["col-id"])))
        elif a.get("role") == "columnheader" and a.get("col-id"):
            self._capture.append((depth, [], ("header", a["col-id"], hidden)))
        elif tag in ("h1", "h2", "a") and not hidden:
            self._capture.append((depth, [], (tag,)))

    def handle_endtag(self, tag):
        if tag in VOID_TAGS or not self.stack:
            return
        depth = len(self.stack)
        while self._capture and self._capture[-1][0] >= depth:
            _, parts, sink = self._capture.pop()
            text = re.sub(r"\s+", " ", "".join(parts)).strip()
            if sink[0] == "cell":
                self.rows[sink[1]]["cells"][sink[2]] = text
            elif sink[0] == "header":
                self.headers.append({"col_id": sink[1], "text": text, "hidden": sink[2]})
            elif sink[0] == "a":
                self.links.append(text)
            else:
                self.headings.append(text)
        if self._row and depth <= self._row_depth:
            self._row = None
        self.stack.pop()

    def handle_data(self, data):
        if self.stack and self.stack[-1][0] in ("script", "style"):
            return
        for _, parts, _ in self._capture:
            parts.append(data)
        self.texts.append(data)

    def ordered_rows(self) -> list[tuple[str, dict]]:
        return sorted(self.rows.items(), key=lambda item: item[1]["index"])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_ui(store: Path, port: int, log: Path) -> subprocess.Popen:
    """docs/mlflow.md's ``mlflow ui`` command, on ``port``, in its own process group."""
    env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", f"sqlite:///{store}"]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    with open(log, "w") as out:
        return subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def wait_until_up(proc: subprocess.Popen, base: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"mlflow ui exited with status {proc.returncode}")
        try:
            with urllib.request.urlopen(base + "/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"mlflow ui did not answer at {base} within {timeout:.0f} s")


def stop(proc: subprocess.Popen) -> None:
    """Stop the ``mlflow ui`` process group this script started (the CLI and its uvicorn child)."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def chromium_args(chromium: str, profile: Path, window: str, budget_ms: int) -> list[str]:
    return [
        chromium,
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        "--no-first-run",
        f"--user-data-dir={profile}",
        f"--window-size={window}",
        f"--virtual-time-budget={budget_ms}",
    ]


def render(chromium: str, url: str, window: str, budgets: list[int], timeout: float) -> tuple[str, int]:
    """The DOM of ``url`` once the runs table is there (or the last try's), and the budget that gave it."""
    dom = ""
    for budget in budgets:
        with tempfile.TemporaryDirectory(prefix="ui_browser_profile_") as profile:
            cmd = chromium_args(chromium, Path(profile), window, budget) + ["--dump-dom", url]
            dom = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout).stdout
        if 'role="gridcell"' in dom and "matching run" in dom:
            return dom, budget
    return dom, budgets[-1]


def screenshot(chromium: str, url: str, window: str, budget: int, path: Path, timeout: float) -> str | None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ui_browser_profile_") as profile:
        cmd = chromium_args(chromium, Path(profile), window, budget) + [f"--screenshot={path.resolve()}", url]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    return str(path) if done.returncode == 0 and path.exists() and path.stat().st_size else None


def store_train_runs(uri: str, experiment_id: str) -> list[dict]:
    """The store's own view: each active train run's id, name and test_error (``MlflowClient``)."""
    from mlflow.entities import ViewType
    from mlflow.tracking import MlflowClient

    from pcn.tracking.ui import HEADLINE, TRAIN_RUNS_FILTER

    runs = MlflowClient(tracking_uri=uri).search_runs(
        [experiment_id], filter_string=TRAIN_RUNS_FILTER, run_view_type=ViewType.ACTIVE_ONLY, max_results=10000
    )
    return [
        {
            "run_id": r.info.run_id,
            "name": r.info.run_name,
            "test_error": r.data.metrics.get(HEADLINE),
        }
        for r in runs
    ]


def shows(text: str, value: float | None) -> bool:
    """Whether a cell's text is ``value`` as the UI rounds it (or within half a unit of its last digit)."""
    if value is None or not text:
        return False
    if text == format_metric(value):
        return True
    try:
        shown = float(text)
    except ValueError:
        return False
    decimals = len(text.split(".")[1]) if "." in text and "e" not in text.lower() else 0
    return abs(shown - value) <= 0.5 * 10**-decimals + 1e-12


def checks_recorder(checks: dict):
    """``record(name, ok, seen)``: store one check's result in ``checks``."""
    return lambda name, ok, seen: checks.update({name: {"pass": bool(ok), "seen": seen}})


def value_checks(rows, names, by_id: dict, train: list[dict], ids: list, one_each: bool) -> dict[str, dict]:
    """The ``test_error_values`` and ``sorted_by_test_error`` checks of :func:`check`."""
    checks: dict[str, dict] = {}
    record = checks_recorder(checks)
    values = []
    for (run_id, row), name in zip(rows, names):
        run = by_id.get(run_id)
        value = run and run["test_error"]
        text = row["cells"].get(HEADLINE_COLUMN, "")
        expected = value is not None and format_metric(value)
        values.append({"run": run["name"] if run else name, "shown": text, "store": value, "expected": expected})
    record(
        "test_error_values",
        bool(values) and one_each and all(shows(v["shown"], v["store"]) for v in values),
        values,
    )

    shown = []
    for v in values:
        try:
            shown.append(float(v["shown"]))
        except ValueError:
            shown.append(None)
    in_order = bool(shown) and None not in shown and all(a <= b for a, b in zip(shown, shown[1:]))
    store_order = sorted((r for r in train if r["test_error"] is not None), key=lambda r: r["test_error"])
    record(
        "sorted_by_test_error",
        in_order and [by_id[i]["test_error"] for i in ids if i in by_id] == [r["test_error"] for r in store_order],
        {"shown_order": shown},
    )
    return checks


def check(dom: str, train: list[dict]) -> dict[str, dict]:
    grid = GridParser()
    grid.feed(dom)
    grid.close()
    checks: dict[str, dict] = {}
    record = checks_recorder(checks)
    visible = [h for h in grid.headers if not h["hidden"]]
    columns = [h["col_id"] for h in visible if "`" in h["col_id"]]
    header = next((h for h in visible if h["col_id"] == HEADLINE_COLUMN), None)
    record(
        "test_error_column",
        header is not None and header["text"] == "test_error",
        {"header": header and header["text"], "columns": columns},
    )

    rows = grid.ordered_rows()
    names = [row["cells"].get("attributes.`Run Name`", "") for _, row in rows]
    matching = re.search(r"(\d+)\s*</strong>\s*matching runs?", dom)
    by_id = {r["run_id"]: r for r in train}
    ids = [run_id for run_id, _ in rows]
    one_each = sorted(ids) == sorted(by_id) and len(ids) == len(set(ids))
    record(
        "one_row_per_train_run",
        one_each and matching is not None and int(matching.group(1)) == len(train),
        dict(rows=len(rows), store_train_runs=len(train), matching_runs_text=matching and int(matching.group(1)))
        | {"not_in_store": [n for (i, _), n in zip(rows, names) if i not in by_id]}
        | {"missing": sorted(r["name"] for r in train if r["run_id"] not in ids)},
    )

    checks.update(value_checks(rows, names, by_id, train, ids, one_each))

    best = [h["col_id"] for h in visible if "best_test_error" in h["col_id"] or "best_test_error" in h["text"]]
    record("no_best_test_error_column", bool(visible) and not best, {"best_columns": best})

    genai = [t for t in grid.links if t in GENAI_ONLY]
    training = [t for t in grid.links if t in MODEL_TRAINING_ONLY]
    record(
        "model_training_mode",
        not genai and bool(training) and "Runs" in grid.headings,
        {"page_headings": grid.headings, "genai_only_side_bar": genai, "model_training_side_bar": training},
    )
    return checks


def version(cmd: list[str]) -> str | None:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    return lines[-1].strip() if lines else None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", type=Path, default=ROOT / "mlflow.db", help="the sqlite store")
    parser.add_argument("--experiment", default="phase-collapse")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "chromium")
    parser.add_argument("--window", default="1600,1000", help="the browser window, WIDTH,HEIGHT")
    parser.add_argument("--budgets", type=int, nargs="+", default=[20000, 60000], help="virtual-time budgets (ms)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds each Chromium run may take")
    parser.add_argument("--screenshot", type=Path, help="also save a PNG of the page (e.g. bench/out/ui_browser.png)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "ui_browser.json")
    args = parser.parse_args(argv)

    import mlflow
    from mlflow.tracking import MlflowClient

    from pcn.tracking.ui import runs_table_url

    t0 = time.monotonic()
    store = args.store.resolve()
    if not store.is_file():
        sys.exit(f"no store at {store}")
    uri = f"sqlite:///{store}"
    experiment = MlflowClient(tracking_uri=uri).get_experiment_by_name(args.experiment)
    if experiment is None:
        sys.exit(f"no experiment {args.experiment!r} in {store}")
    train = store_train_runs(uri, experiment.experiment_id)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    url = runs_table_url(base, experiment.experiment_id)
    log = args.out.with_suffix(".mlflow_ui.log")
    proc = start_ui(store, port, log)
    try:
        wait_until_up(proc, base, timeout=120)
        dom, budget = render(args.chromium, url, args.window, args.budgets, args.timeout)
        shot = args.screenshot and screenshot(args.chromium, url, args.window, budget, args.screenshot, args.timeout)
    finally:
        stop(proc)

    checks = check(dom, train)
    report = {
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "store": str(store),
        "experiment": {"name": experiment.name, "id": experiment.experiment_id, "tags": experiment.tags},
        "url": url,
        "chromium": version([args.chromium, "--version"]),
        "mlflow": mlflow.__version__,
        "virtual_time_budget_ms": budget,
        "screenshot": shot or None,
        "seconds": round(time.monotonic() - t0, 1),
        "pass": all(c["pass"] for c in checks.values()),
        "checks": checks,
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    for name, c in checks.items():
        print(f"{'PASS' if c['pass'] else 'FAIL'}  {name}: {json.dumps(c['seen'])[:200]}")
    print(f"{'all checks pass' if report['pass'] else 'a check FAILS'}; wrote {args.out}")
    sys.exit(0 if report["pass"] else 1)


if __name__ == "__main__":
    main()
