"""Every committed table, metrics file and plot-data CSV that is derived from the committed per-run tables
(``results/evaluation/*_runs.csv``), derived again and compared with the committed file.

The jobs and their command lines are Snakemake's own, from a dry run of the checkout (``-n -p --forceall``): the
``aggregate`` of every results name (its metrics, tables and plot data), every ``study``, each
``benchmark_summary`` and the frontier's tables (``frontier_table``). An aggregate reads the per-unit runs tables
under ``models/`` (absent from a clone); it is given the committed copy of them instead, which is their
concatenation. ``frontier_table`` reads its groups under ``models/``; it is given the runs table it committed
(``results/evaluation/frontier_runs.csv``), from which it derives its tables in the pipeline too. Commands run as argument lists, never
through a shell. A file that comes out different is named with its first differing key (JSON), row and column
(CSV) or line.

Used by ``results_gate.py``; needs only seconds (no training).
"""
from __future__ import annotations

import csv
import io
import json
import math
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

# in this order: studies read the aggregates' runs copies
DERIVING = ("aggregate", "study", "benchmark_summary", "frontier_table")
_NUMBER = re.compile(r"-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def planned_jobs(clone: Path, env: dict, target: str = "all") -> list[dict]:
    """Every job a forced dry run of ``target`` plans: ``{"rule", "outputs", "argv"}`` (argv: its shell command
    split as the shell would, without running one)."""
    dry = subprocess.run([sys.executable, "-m", "snakemake", "-n", "-p", "--forceall", target], cwd=clone, env=env,
                         capture_output=True, text=True)
    if dry.returncode != 0:
        raise RuntimeError(f"snakemake -n -p --forceall {target} failed ({dry.returncode}):\n{dry.stderr[-2000:]}")
    jobs, job = [], None
    for line in dry.stdout.splitlines():
        m = re.match(r"^(?:local)?rule (\S+):$", line)
        if m:
            job = {"rule": m.group(1), "outputs": [], "argv": None}
            jobs.append(job)
        elif job is not None and line.startswith("    output: "):
            job["outputs"] = line[len("    output: "):].split(", ")
        elif job is not None and line.startswith("Shell command: "):
            job["argv"] = shlex.split(line[len("Shell command: "):])
    return jobs


def _from_committed_runs(argv: list[str], staged: Path, clone: Path) -> list[str]:
    """An aggregate's command with its ``--runs`` (per-unit tables under models/) replaced by a staged copy of
    the committed ``--runs-copy`` (their concatenation)."""
    _stage_runs_copy(argv, staged, clone)
    start = argv.index("--runs") + 1
    end = next((i for i in range(start, len(argv)) if argv[i].startswith("--")), len(argv))
    return argv[:start] + [str(staged)] + argv[end:]


def _stage_runs_copy(argv: list[str], staged: Path, clone: Path) -> None:
    """Copy the committed runs table a job wrote (its ``--runs-copy``) to ``staged``, before any output is removed."""
    staged.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(clone / argv[argv.index("--runs-copy") + 1], staged)


def _frontier_from_committed_runs(argv: list[str], staged: Path, clone: Path) -> list[str]:
    """frontier_table's command with its groups (under models/) replaced by a staged copy of the committed runs
    table it wrote (``--runs-copy``): ``--runs`` derives the same tables from that file alone."""
    _stage_runs_copy(argv, staged, clone)
    out, skip = [], False
    for a in argv:
        if a.startswith("--"):
            skip = a in ("--students", "--teachers", "--models", "--runs-copy")
        if not skip:
            out.append(a)
    return out + ["--runs", str(staged)]


def first_difference(path: str, committed: str, derived: str) -> str:
    """Where two versions of a results file first differ, in the file's own terms."""
    if path.endswith(".json"):
        return _json_difference(json.loads(committed), json.loads(derived), "") or "formatting"
    old, new = committed.splitlines(), derived.splitlines()
    if path.endswith(".csv") and old and new:
        header = next(csv.reader([old[0]]))
        for n, (a, b) in enumerate(zip(old, new), 1):
            if a != b:
                ra, rb = next(csv.reader(io.StringIO(a))), next(csv.reader(io.StringIO(b)))
                col = next((i for i, (x, y) in enumerate(zip(ra, rb)) if x != y), min(len(ra), len(rb)))
                name = header[col] if col < len(header) else f"column {col + 1}"
                return f"line {n}, column {name!r}: {ra[col] if col < len(ra) else ''!r} committed, " \
                       f"{rb[col] if col < len(rb) else ''!r} derived"
    for n, (a, b) in enumerate(zip(old, new), 1):
        if a != b:
            return f"line {n}: {a[:80]!r} committed, {b[:80]!r} derived"
    return f"{len(old)} lines committed, {len(new)} derived"


def _json_difference(a, b, key: str) -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                return f"key {key + k!r} only in the {'derived' if k not in a else 'committed'} file"
            found = _json_difference(a[k], b[k], f"{key}{k}.")
            if found:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            found = _json_difference(x, y, f"{key}{i}.")
            if found:
                return found
        return None
    return None if a == b else f"key {key.rstrip('.')!r}: {a!r} committed, {b!r} derived"


def equal_up_to_rounding(committed: str, derived: str, rel: float = 1e-9) -> bool:
    """The same text but for numbers within ``rel`` of each other: what another CPU type's last bits give."""
    a, b = _NUMBER.split(committed), _NUMBER.split(derived)
    na, nb = _NUMBER.findall(committed), _NUMBER.findall(derived)
    return a == b and len(na) == len(nb) and all(
        x == y or math.isclose(float(x), float(y), rel_tol=rel, abs_tol=1e-300) for x, y in zip(na, nb))


def derived_differences(clone: Path, env: dict, planned: list[dict], bitwise: bool) -> tuple[list[str], int]:
    """Derive every file again in ``clone`` (a clone of HEAD) by the ``planned`` jobs (:func:`planned_jobs`): the
    files that differ, and how many were checked. ``bitwise``: byte for byte (the CPU type the results were made
    on); else numbers to 1e-9 relative."""
    jobs = [j for j in planned if j["rule"] in DERIVING and j["argv"]]
    jobs.sort(key=lambda j: DERIVING.index(j["rule"]))
    staged_dir = clone / ".gate" / "runs"
    commands = []
    for n, job in enumerate(jobs):  # stage every input before any output is removed
        argv = job["argv"]
        if job["rule"] == "aggregate":
            argv = _from_committed_runs(argv, staged_dir / f"{n}.csv", clone)
        elif job["rule"] == "frontier_table":
            argv = _frontier_from_committed_runs(argv, staged_dir / f"{n}.csv", clone)
        commands.append(argv)
    # a runs copy is the input here, not an output: it is compared by the rebuild from empty, not derived
    outputs = [o for job in jobs for o in job["outputs"]
               if not (job["rule"] == "frontier_table" and o.endswith("_runs.csv"))]
    for out in outputs:
        (clone / out).unlink(missing_ok=True)
    problems = []
    for argv in commands:
        ran = subprocess.run([sys.executable if a == "python" else a for a in argv], cwd=clone, env=env,
                             capture_output=True, text=True)
        if ran.returncode != 0:
            problems.append(f"{shlex.join(argv)[:200]} failed ({ran.returncode}): {ran.stderr.strip()[-500:]}")
    for out in outputs:
        committed = subprocess.run(["git", "show", f"HEAD:{out}"], cwd=clone, capture_output=True, text=True)
        path = clone / out
        if committed.returncode != 0:
            problems.append(f"{out}: derived, but not committed")
        elif not path.exists():
            problems.append(f"{out}: committed, but not derived again")
        else:
            derived = path.read_text()
            same = derived == committed.stdout if bitwise else equal_up_to_rounding(committed.stdout, derived)
            if not same:
                problems.append(f"{out}: {first_difference(out, committed.stdout, derived)}")
    return problems, len(outputs)


def cheap_names(jobs: list[dict]) -> list[str]:
    """Results names that rebuild from empty in about a minute: the benchmark suite's tables."""
    names = []
    for job in jobs:
        if job["rule"] == "aggregate" and job["argv"]:
            metrics = job["argv"][job["argv"].index("--metrics") + 1]
            name = Path(metrics).stem
            if "-benchmark_" in name:
                names.append(name)
    return sorted(names)
