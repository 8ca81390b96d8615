"""Wall time of the benchmark suite (`snakemake --cores N benchmark`) from empty, beside the machine's float32
matmul rate, so the time can be read against the machine.

    python benchmarks/benchmark_suite_time.py              # run in the checkout; deletes the suite's outputs first

It deletes only the suite's own data, models and results (the tables of params.yaml `benchmark.datasets`), so the
default run's and the studies' outputs are kept. Run it on a quiet machine: other work skews both numbers.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]


def matmul_gflops(threads: int, n: int = 1920, k: int = 128, repeats: int = 200) -> float:
    """float32 (n x k) @ (k x k), the shape of a teacher layer on a benchmark table, on ``threads`` threads."""
    torch.set_num_threads(threads)
    a, b = torch.randn(25, n, k), torch.randn(25, k, k)
    for _ in range(10):
        torch.bmm(a, b)
    start = time.perf_counter()
    for _ in range(repeats):
        torch.bmm(a, b)
    return 2 * 25 * n * k * k * repeats / (time.perf_counter() - start) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args()
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    suite = params["benchmark"]["datasets"]
    for d in suite:
        for folder in (ROOT / "data" / d, ROOT / "models" / d):
            shutil.rmtree(folder, ignore_errors=True)
        for f in (ROOT / "results").glob(f"*/{d}-benchmark*"):
            f.unlink()
    for folder in ("tables", "figures"):
        shutil.rmtree(ROOT / "results" / folder / "benchmark", ignore_errors=True)
    before = matmul_gflops(args.cores)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "snakemake", "--cores", str(args.cores), "benchmark"], cwd=ROOT,
                   check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = matmul_gflops(args.cores)
    kinds = params["benchmark"].get("noise_kinds") or ["resample"]
    print(f"benchmark suite ({len(suite)} tables x {len(kinds)} noise kinds, "
          f"{params['benchmark']['overrides'].get('seeds')} seeds) from empty on "
          f"{args.cores} cores: {wall:.0f} s ({wall / 60:.1f} min)")
    print(f"float32 matmul (25 x 1920x128 @ 128x128, {args.cores} threads): {before:.0f} GFLOP/s before, "
          f"{after:.0f} after")


if __name__ == "__main__":
    main()
