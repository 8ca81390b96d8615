"""The results gate: the results committed with a commit are the ones its code and params produce.

    python .ci/results_gate.py [--skip-headline]     check
    python .ci/results_gate.py --record              after committing a run: note the machine it ran on

1. `dvc status`: dvc.lock records the hashes of the code, params and git-tracked results of the run that made
   them. Anything changed since (a source file, a params value, a metric) fails; data/ and models/ (DVC-cached,
   absent from a clone) may be anything.
2. Every committed metrics file, table and plot-data CSV derived from the committed per-run tables
   (``results/evaluation/*_runs.csv``) is derived again (``derived.py``, seconds) and compared: an edited number
   fails, named with its file and key, even after ``dvc commit -f``.
3. The headline (`snakemake --cores 2 headline`) and one more results name, chosen by the commit hash among the
   cheap ones (the benchmark suite's tables, about a minute each), rebuilt from empty in a clone of HEAD: their
   metrics, tables, runs tables and plot data must be byte-identical to the committed ones. Training is bitwise
   reproducible on one CPU type only (the BLAS picks its kernels by instruction set, and 2000 epochs carry a
   last-bit difference far: docs/pipeline.md), so this is checked on the kind of CPU the committed results were
   made on (``results/machine.json``, written by ``--record``); on another it is reported and skipped, and step 2
   compares numbers to 1e-9 instead of byte for byte.

Exits 1 naming what differs and what to run; 0 when all hold.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from derived import cheap_names, derived_differences, planned_jobs  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CACHED_OUTS = {"data", "models"}  # DVC-cached, not in git: a clone has neither
HEADLINE_FILES = ["results/metrics/sinusoid.json", "results/tables/sinusoid.csv", "results/tables/sinusoid.md",
                  "results/evaluation/sinusoid_runs.csv", "results/plots/sinusoid_error_vs_noise.csv",
                  "results/plots/sinusoid_error_vs_noise_wide.csv", "results/plots/sinusoid_rejection.csv",
                  "results/plots/sinusoid_fits.csv", "results/plots/sinusoid_fits_points.csv"]
MACHINE = ROOT / "results" / "machine.json"
ISA = ("avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile")  # what selects BLAS kernels
FIX = ("rerun the pipeline with this commit's code and params and commit what it writes:\n"
       "    snakemake --cores 2 all && dvc commit -f && git add results dvc.lock && git commit")


def cpu_type() -> dict:
    """The CPU model and the instruction sets the BLAS and PyTorch choose their kernels by, and the torch build."""
    model, flags = platform.processor(), set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    import torch
    return {"cpu": model, "isa": [f for f in ISA if f in flags], "torch": torch.__version__}


def stale_in_dvc_status(root: Path) -> list[str]:
    """What `dvc status` says changed, less data/ and models/ not being in the cache."""
    proc = subprocess.run(["dvc", "status", "--json"], cwd=root, capture_output=True, text=True)
    if proc.returncode != 0:
        return [f"dvc status failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}"]
    return stale_in(json.loads(proc.stdout or "{}"))


def stale_in(status: dict) -> list[str]:
    """The changes in a parsed `dvc status --json` that are not data/ or models/ (absent from a clone)."""
    stale = []
    for stage, changes in status.items():
        for change in changes if isinstance(changes, list) else [changes]:
            if isinstance(change, str):  # e.g. "changed command", "always changed"
                stale.append(f"{stage}: {change}")
                continue
            for kind, items in change.items():
                for path, state in items.items():
                    if kind == "changed outs" and path in CACHED_OUTS:
                        continue
                    stale.append(f"{stage}: {kind}: {path}: {json.dumps(state)}")
    return stale


def name_files(name: str) -> list[str]:
    """The committed files of one results name that its aggregate writes."""
    return [f"results/metrics/{name}.json", f"results/tables/{name}.csv", f"results/tables/{name}.md",
            f"results/evaluation/{name}_runs.csv", f"results/plots/{name}_error_vs_noise.csv",
            f"results/plots/{name}_error_vs_noise_wide.csv", f"results/plots/{name}_rejection.csv"]


@contextmanager
def clone_of_head(root: Path):
    """A clone of HEAD in a temporary folder, and the environment whose jobs import its own sources."""
    with tempfile.TemporaryDirectory(prefix="kdreg-gate-") as tmp:
        clone = Path(tmp) / "kdreg"
        subprocess.run(["git", "clone", "--quiet", str(root), str(clone)], check=True)
        yield clone, {**os.environ, "PYTHONPATH": str(clone / "src")}


def rotating_name(root: Path, names: list[str]) -> str | None:
    """One of the cheap results names, chosen by the commit hash: every one is rebuilt by some commit."""
    if not names:
        return None
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True)
    return names[int(head.stdout.strip(), 16) % len(names)]


def rebuild_differences(root: Path, extra: str | None) -> tuple[list[str], float]:
    """Rebuild the headline (and the results name ``extra``) from empty in a clone of HEAD: the committed files
    that came out different, and the seconds it took."""
    with clone_of_head(root) as (clone, env):
        targets = ["headline"] + ([f"results/metrics/{extra}.json"] if extra else [])
        start = time.perf_counter()
        run = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", *targets], cwd=clone, env=env,
                             capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if run.returncode != 0:
            return [f"snakemake --cores 2 {' '.join(targets)} failed ({run.returncode}):\n{run.stderr[-3000:]}"], \
                seconds
        files = HEADLINE_FILES + (name_files(extra) if extra else [])
        status = subprocess.run(["git", "status", "--porcelain", "--", *files], cwd=clone,
                                capture_output=True, text=True, check=True).stdout
        return [f"{line[3:]} differs from the committed file" for line in status.splitlines()], seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--skip-headline", action="store_true", help="only the dvc status check (seconds)")
    parser.add_argument("--record", action="store_true", help=f"write this machine's CPU type to {MACHINE}")
    args = parser.parse_args(argv)
    if args.record:
        MACHINE.write_text(json.dumps(cpu_type(), indent=2) + "\n")
        print(f"results gate: recorded {MACHINE.relative_to(ROOT)}: {cpu_type()}")
        return 0
    stale = stale_in_dvc_status(ROOT)
    if stale:
        print("results gate: FAILED: the committed results are not those of this commit's code and params "
              "(dvc status):", *[f"  {s}" for s in stale], sep="\n")
        if any(s.startswith(f"{stage}: changed outs: results/") for s in stale for stage in ("reproduce",)):
            # DVC names only the folder of an untracked-by-cache output: derive again to name the file
            with clone_of_head(ROOT) as (clone, env):
                differ, _ = derived_differences(clone, env, planned_jobs(clone, env), bitwise=False)
            print(*[f"  {d}" for d in differ], sep="\n")
        print(f"Fix: {FIX}")
        return 1
    print("results gate: dvc status clean (data/ and models/ aside)")
    if args.skip_headline:
        return 0
    made_on = json.loads(MACHINE.read_text()) if MACHINE.exists() else None
    same_cpu = made_on == cpu_type()
    # every number derived from the committed runs tables, derived again: an edited number fails even after
    # `dvc commit -f` (byte for byte on the recorded CPU type; elsewhere numbers to 1e-9, the last bits aside)
    with clone_of_head(ROOT) as (clone, env):
        start = time.perf_counter()
        planned = planned_jobs(clone, env)
        differ, checked = derived_differences(clone, env, planned, bitwise=same_cpu)
        names = cheap_names(planned)
    if differ:
        print("results gate: FAILED: committed results differ from what the committed runs tables give "
              "(results/evaluation/*_runs.csv, through aggregate, study and benchmark-summary):",
              *[f"  {d}" for d in differ], f"Fix: {FIX}", sep="\n")
        return 1
    print(f"results gate: {checked} files derived from the committed runs tables again "
          f"({time.perf_counter() - start:.0f} s): all match{'' if same_cpu else ' (numbers to 1e-9)'}")
    if not same_cpu:
        print(f"results gate: rebuild from empty skipped: the committed results were made on {made_on}, this "
              f"machine is {cpu_type()}; bitwise equality holds on one CPU type (docs/pipeline.md)")
        return 0
    extra = rotating_name(ROOT, names)
    differ, seconds = rebuild_differences(ROOT, extra)
    if differ:
        print(f"results gate: FAILED: the headline{f' and {extra}' if extra else ''} rebuilt from empty differ "
              "from the committed results:", *[f"  {d}" for d in differ], f"Fix: {FIX}", sep="\n")
        return 1
    print(f"results gate: the headline{f' and {extra} (chosen by the commit hash)' if extra else ''} rebuilt from "
          f"empty ({seconds:.0f} s) match the committed files "
          f"({len(HEADLINE_FILES) + (len(name_files(extra)) if extra else 0)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
