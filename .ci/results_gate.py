"""The results gate: the results committed with a commit are the ones its code and params produce.

    python .ci/results_gate.py [--skip-headline]     check
    python .ci/results_gate.py --record              after committing a run: note the machine it ran on

1. `dvc status`: dvc.lock records the hashes of the code, params and git-tracked results of the run that made
   them. Anything changed since (a source file, a params value, a metric) fails; data/ and models/ (DVC-cached,
   absent from a clone) may be anything.
2. The headline (`snakemake --cores 2 headline`) rebuilt from empty in a clone of HEAD: its metrics, tables, runs
   table and plot data must be byte-identical to the committed ones. Training is bitwise reproducible on one CPU
   type only (the BLAS picks its kernels by instruction set, and 2000 epochs carry a last-bit difference far:
   docs/pipeline.md), so this is checked on the kind of CPU the committed results were made on
   (``results/machine.json``, written by ``--record``); on another it is reported and skipped.

Exits 1 naming what differs and what to run; 0 when both hold.
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
from pathlib import Path

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


def headline_differences(root: Path) -> tuple[list[str], float]:
    """Rebuild the headline from empty in a clone of HEAD: the committed files that came out different, and the
    seconds it took."""
    with tempfile.TemporaryDirectory(prefix="kdreg-gate-") as tmp:
        clone = Path(tmp) / "kdreg"
        subprocess.run(["git", "clone", "--quiet", str(root), str(clone)], check=True)
        env = {**os.environ, "PYTHONPATH": str(clone / "src")}  # the jobs import the clone's own sources
        start = time.perf_counter()
        run = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", "headline"], cwd=clone, env=env,
                             capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if run.returncode != 0:
            return [f"snakemake --cores 2 headline failed ({run.returncode}):\n{run.stderr[-3000:]}"], seconds
        status = subprocess.run(["git", "status", "--porcelain", "--", *HEADLINE_FILES], cwd=clone,
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
              "(dvc status):", *[f"  {s}" for s in stale], f"Fix: {FIX}", sep="\n")
        return 1
    print("results gate: dvc status clean (data/ and models/ aside)")
    if args.skip_headline:
        return 0
    made_on = json.loads(MACHINE.read_text()) if MACHINE.exists() else None
    if made_on != cpu_type():
        print(f"results gate: headline comparison skipped: the committed results were made on {made_on}, this "
              f"machine is {cpu_type()}; bitwise equality holds on one CPU type (docs/pipeline.md)")
        return 0
    differ, seconds = headline_differences(ROOT)
    if differ:
        print("results gate: FAILED: the headline rebuilt from empty differs from the committed results:",
              *[f"  {d}" for d in differ], f"Fix: {FIX}", sep="\n")
        return 1
    print(f"results gate: the headline rebuilt from empty ({seconds:.0f} s) matches the committed files "
          f"({len(HEADLINE_FILES)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
