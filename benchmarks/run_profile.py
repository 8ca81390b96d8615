"""Where a Snakemake run's wall time goes, read from the run's own log (``.snakemake/log/*.snakemake.log``).

    python benchmarks/run_profile.py RUN_DIR [--log LOG] [--cores 2 8 16] [--jobs-out jobs.json]

Snakemake writes, for every job, the time it started (``[Sat Dec  5 21:52:31 2026]`` above ``rule NAME:``), its
rule, wildcards, inputs, outputs and threads, and the time it finished (above ``Finished jobid: N``). From that:

- per kind of job (data, noise, teachers by variant, students, frontier, collect/aggregate, studies, plots) the
  job count, the job-seconds and their share of the machine's core-seconds (wall × cores);
- the critical path: the longest chain of dependent jobs (job B depends on job A when one of B's inputs is one of
  A's outputs, or lies inside an output directory of A), whose sum no number of cores can beat;
- the wall time projected on more cores: a list schedule of the measured jobs (each job holds ``threads`` cores,
  at most all of them; the highest priority first, then the job with the longest chain still behind it, as
  Snakemake starts teachers first). It assumes a job takes as long as it did here, so it says how the DAG scales,
  not how memory bandwidth shared by more jobs would slow each one. The same schedule on the measured cores is
  printed beside the measured wall time, as a check of the model.

Times have one-second resolution (Snakemake's); a job's seconds are ``finished − started``.
"""
from __future__ import annotations

import argparse
import heapq
import json
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

_STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")
_RULE = re.compile(r"^(?:local)?rule (\S+):$")
_FINISHED = re.compile(r"^Finished jobid: (\d+)")


@dataclass
class Job:
    jobid: int
    rule: str
    start: float
    end: float | None = None
    threads: int = 1
    priority: int = 0
    wildcards: str = ""
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return (self.end or self.start) - self.start


def _stamp(text: str) -> float:
    return datetime.strptime(" ".join(text.split()), "%a %b %d %H:%M:%S %Y").timestamp()


def _paths(value: str) -> list[str]:
    return [p.strip() for p in value.split(", ") if p.strip()]


def parse_log(text: str) -> list[Job]:
    """The jobs of a Snakemake log that ran a shell command or a target rule, in the order they started.

    A job with no ``Finished`` line (the run failed or was killed) keeps ``end = None``."""
    jobs: dict[int, Job] = {}
    stamp, current, pending = None, None, None
    for raw in text.splitlines():
        line = raw.rstrip()
        m = _STAMP.match(line)
        if m:
            stamp, current, pending = _stamp(m.group(1)), None, None
            continue
        m = _RULE.match(line)
        if m and stamp is not None:
            current, pending = {"rule": m.group(1), "start": stamp}, None
            continue
        if current is not None and line.startswith("    ") and ":" in line:
            key, _, value = line.strip().partition(": ")
            if key == "jobid":
                job = Job(jobid=int(value), rule=current["rule"], start=current["start"])
                job.__dict__.update({k: v for k, v in current.items() if k not in ("rule", "start")})
                jobs[job.jobid] = job
                pending = job
            elif key in ("input", "output"):
                current[key + "s"] = _paths(value)
            elif key == "wildcards":
                current["wildcards"] = value
            elif key in ("threads", "priority"):
                current[key] = int(value)
            # a job's fields after jobid (reason, resources, threads, priority) still belong to it
            if pending is not None and key in ("threads", "priority", "wildcards"):
                setattr(pending, key, current[key])
            continue
        m = _FINISHED.match(line)
        if m and stamp is not None and int(m.group(1)) in jobs:
            jobs[int(m.group(1))].end = stamp
            current = None
    return sorted(jobs.values(), key=lambda j: (j.start, j.jobid))


def kind_of(job: Job) -> str:
    """The kind a job counts under: data, noise, teachers (by variant), students, frontier, collect, aggregate,
    studies, plots; target rules (no outputs) are ``target``."""
    head, _, rest = job.rule.partition(".")
    if head == "train_teachers":
        label = rest.split(".", 1)[0]                # sinusoid-teacher_tukey, boston-benchmark_replace
        variant = label.split("-", 1)[1] if "-" in label else "default"
        return f"teachers: {variant}"
    kinds = {"make_data": "data", "prepare": "data", "corrupt": "noise", "train_students": "students",
             "train_frontier": "frontier", "collect": "collect", "aggregate": "aggregate",
             "frontier_table": "aggregate", "benchmark_summary": "aggregate", "study": "studies",
             "fits_data": "plot data"}
    if head in kinds:
        return kinds[head]
    if head.startswith(("plot", "study_plot", "figure")):
        return "plots"
    if head.startswith("study"):
        return "studies"
    if not job.outputs:
        return "target"
    return head


def dependencies(jobs: list[Job]) -> dict[int, set[int]]:
    """For each job, the jobs whose outputs it reads (an output file, or a file inside an output directory)."""
    made_by = {}
    for job in jobs:
        for out in job.outputs:
            made_by[out.rstrip("/")] = job.jobid
    deps: dict[int, set[int]] = {job.jobid: set() for job in jobs}
    for job in jobs:
        for path in job.inputs:
            p = path.rstrip("/")
            while p:
                if p in made_by and made_by[p] != job.jobid:
                    deps[job.jobid].add(made_by[p])
                    break
                p = p.rpartition("/")[0]
    return deps


def topological(jobs: list[Job], deps: dict[int, set[int]]) -> list[Job]:
    """The jobs with each one after every job it depends on (start times have one-second ties)."""
    by_id, placed, order = {j.jobid: j for j in jobs}, set(), []
    pending = sorted(jobs, key=lambda j: (j.start, j.jobid))
    while pending:
        rest = []
        for job in pending:
            if deps[job.jobid] <= placed:
                order.append(job)
                placed.add(job.jobid)
            else:
                rest.append(job)
        if len(rest) == len(pending):
            raise ValueError(f"dependency cycle among jobs {[j.jobid for j in rest]}")
        pending = rest
    return [by_id[j.jobid] for j in order]


def critical_path(jobs: list[Job], deps: dict[int, set[int]]) -> tuple[float, list[Job]]:
    """The longest chain of dependent jobs by their measured seconds: (its seconds, its jobs in order)."""
    by_id = {j.jobid: j for j in jobs}
    best: dict[int, tuple[float, int | None]] = {}
    for job in topological(jobs, deps):
        before = max(((best[d][0], d) for d in deps[job.jobid] if d in best), default=(0.0, None))
        best[job.jobid] = (before[0] + job.seconds, before[1])
    if not best:
        return 0.0, []
    end = max(best, key=lambda i: best[i][0])
    chain, cur = [], end
    while cur is not None:
        chain.append(by_id[cur])
        cur = best[cur][1]
    return best[end][0], chain[::-1]


def tail_lengths(jobs: list[Job], deps: dict[int, set[int]]) -> dict[int, float]:
    """Each job's seconds plus the longest chain of jobs that wait on it (its "bottom level")."""
    after: dict[int, list[int]] = {j.jobid: [] for j in jobs}
    for jid, ds in deps.items():
        for d in ds:
            after[d].append(jid)
    tail: dict[int, float] = {}
    for job in reversed(topological(jobs, deps)):
        tail[job.jobid] = job.seconds + max((tail[a] for a in after[job.jobid] if a in tail), default=0.0)
    return tail


def schedule(jobs: list[Job], deps: dict[int, set[int]], cores: int) -> float:
    """The wall time of a list schedule of the measured jobs on ``cores`` cores (see the module docstring)."""
    tail = tail_lengths(jobs, deps)
    waiting = {j.jobid: set(deps[j.jobid]) for j in jobs}
    by_id = {j.jobid: j for j in jobs}
    after: dict[int, list[int]] = {j.jobid: [] for j in jobs}
    for jid, ds in deps.items():
        for d in ds:
            after[d].append(jid)
    ready = [(-by_id[i].priority, -tail[i], i) for i, w in waiting.items() if not w]
    heapq.heapify(ready)
    running: list[tuple[float, int]] = []
    now, free = 0.0, cores
    while ready or running:
        held = []
        while ready:  # start every ready job that fits, in priority order
            item = heapq.heappop(ready)
            need = min(by_id[item[2]].threads, cores)
            if need <= free:
                free -= need
                heapq.heappush(running, (now + by_id[item[2]].seconds, item[2]))
            else:
                held.append(item)
        for item in held:
            heapq.heappush(ready, item)
        now, done = heapq.heappop(running)
        free += min(by_id[done].threads, cores)
        for nxt in after[done]:
            waiting[nxt].discard(done)
            if not waiting[nxt]:
                heapq.heappush(ready, (-by_id[nxt].priority, -tail[nxt], nxt))
    return now


def profile(jobs: list[Job], cores: int, project: tuple[int, ...] = (8, 16)) -> dict:
    """Per-kind job-seconds, the critical path and the projected wall times of a finished run."""
    finished = [j for j in jobs if j.end is not None]
    if not finished:
        raise ValueError("the log holds no finished job: was the run made with snakemake's -q (which logs no jobs)?")
    wall = max(j.end for j in finished) - min(j.start for j in finished)
    deps = dependencies(finished)
    kinds: dict[str, dict] = {}
    for job in finished:
        k = kinds.setdefault(kind_of(job), {"jobs": 0, "job_seconds": 0.0, "core_seconds": 0.0})
        k["jobs"] += 1
        k["job_seconds"] += job.seconds
        k["core_seconds"] += job.seconds * min(job.threads, cores)
    length, chain = critical_path(finished, deps)
    return {
        "wall_seconds": wall, "cores": cores, "jobs": len(finished),
        "job_seconds": sum(j.seconds for j in finished),
        "kinds": dict(sorted(kinds.items(), key=lambda kv: -kv[1]["core_seconds"])),
        "critical_path": {"seconds": length, "jobs": [(j.rule + (f"[{j.wildcards}]" if j.wildcards else ""),
                                                       j.seconds) for j in chain]},
        "projected_wall_seconds": {c: schedule(finished, deps, c) for c in (cores, *project)},
    }


def format_profile(p: dict) -> str:
    cores, wall = p["cores"], p["wall_seconds"]
    lines = ["| kind | jobs | job-seconds | share of the core-seconds |", "|---|---:|---:|---:|"]
    for kind, k in p["kinds"].items():
        if kind == "target":
            continue
        lines.append(f"| {kind} | {k['jobs']} | {k['job_seconds']:.0f} | "
                     f"{100 * k['core_seconds'] / (wall * cores):.1f}% |")
    busy = sum(k["core_seconds"] for k in p["kinds"].values())
    lines.append(f"| idle cores | | | {100 * (1 - busy / (wall * cores)):.1f}% |")
    lines += ["", f"Wall {wall:.0f} s on {cores} cores, {p['jobs']} jobs, {p['job_seconds']:.0f} job-seconds.",
              f"Critical path: {p['critical_path']['seconds']:.0f} s over {len(p['critical_path']['jobs'])} jobs: "
              + " → ".join(f"{name} ({s:.0f} s)" for name, s in p["critical_path"]["jobs"] if s >= 1), "",
              "| cores | projected wall (list schedule of the measured jobs) |", "|---:|---:|"]
    for c, s in p["projected_wall_seconds"].items():
        lines.append(f"| {c} | {s:.0f} s{' (measured: %.0f s)' % wall if c == cores else ''} |")
    return "\n".join(lines)


def newest_log(run_dir: Path) -> Path:
    logs = sorted((run_dir / ".snakemake" / "log").glob("*.snakemake.log"))
    if not logs:
        raise SystemExit(f"{run_dir}/.snakemake/log holds no snakemake log: run snakemake there first")
    return logs[-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir", type=Path, help="where snakemake ran")
    ap.add_argument("--log", type=Path, help="the snakemake log (default: the newest in RUN_DIR/.snakemake/log)")
    ap.add_argument("--cores", type=int, default=2, help="cores the run had")
    ap.add_argument("--project", type=int, nargs="*", default=[8, 16], help="cores to project the wall time on")
    ap.add_argument("--jobs-out", type=Path, help="write the parsed jobs as JSON here")
    args = ap.parse_args()
    jobs = parse_log((args.log or newest_log(args.run_dir)).read_text())
    if args.jobs_out:
        args.jobs_out.write_text(json.dumps([asdict(j) for j in jobs], indent=1))
    print(format_profile(profile(jobs, args.cores, tuple(args.project))))


if __name__ == "__main__":
    main()
