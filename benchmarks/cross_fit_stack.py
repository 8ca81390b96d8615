"""Cross-fitted teachers: stacked (members × folds as one model) against one fit at a time, in one run.

    python benchmarks/cross_fit_stack.py [--members 4] [--epochs 200]

The committed sinusoid teacher (1-128-128-128-1, 800 training rows) with cross_fit: 5, `replace` noise at p = 0.2,
on pipeline.teacher_threads threads; the stack holds pipeline.teacher_stack_size fits (2 members × 5 folds).
Prints seconds per fit and the effective GFLOP/s (3 × 2·R·Σ in·out per fit and epoch, R = 640 rows).
"""
from __future__ import annotations

import argparse
import time

import torch

from kdreg.config import load_params, teacher_config
from kdreg.data import make_sinusoid
from kdreg.memory import keep_freed_memory
from kdreg.noise import NoisyLabels
from kdreg.teacher import train_teacher, train_teachers


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--members", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=200)
    args = ap.parse_args()
    keep_freed_memory()
    params = load_params("params.yaml")
    torch.set_num_threads(params["pipeline"]["teacher_threads"])
    cfg = teacher_config(params, "sinusoid")
    cfg.update(cross_fit=5)
    cfg["train"]["epochs"] = args.epochs
    d = params["datasets"]["sinusoid"]
    ds = make_sinusoid(d["n_train"], d["n_test"], d["val_fraction"], d["data_seed"])
    noisies = [NoisyLabels.make(ds.y_dev, "replace", 0.2, s) for s in range(args.members)]
    seeds = list(range(args.members))
    hidden = cfg["model"]["hidden"]
    widths = [1, *hidden, 1]
    rows = int((~ds.val).sum()) * 4 // 5
    flop_per_fit = 3 * 2 * rows * sum(a * b for a, b in zip(widths[:-1], widths[1:])) * args.epochs
    fits = 5 * args.members
    start = time.perf_counter()
    train_teachers(ds, noisies, cfg, seeds, "cpu", stack_size=params["pipeline"]["teacher_stack_size"])
    stacked = time.perf_counter() - start
    start = time.perf_counter()
    for noisy, seed in zip(noisies, seeds):
        train_teacher(ds, noisy, cfg, seed, "cpu")
    alone = time.perf_counter() - start
    print("| cross-fit teachers | s per fit | GFLOP/s |\n|---|---:|---:|")
    print(f"| one at a time | {alone / fits:.3f} | {flop_per_fit * fits / alone / 1e9:.0f} |")
    print(f"| stacked ({params['pipeline']['teacher_stack_size']} fits a stack) | {stacked / fits:.3f} | "
          f"{flop_per_fit * fits / stacked / 1e9:.0f} |")
    print(f"\none at a time / stacked: **{alone / stacked:.2f}×** ({fits} fits of {args.epochs} epochs)")


if __name__ == "__main__":
    main()
