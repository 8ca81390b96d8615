"""Clean-test RMSE of the teacher and every method on the sinusoid, replace noise.

    python benchmarks/sinusoid_methods.py [--levels 0 0.2 0.4] [--seeds 3] [--params params.yaml]

Uses the committed params.yaml (sinusoid section) with the real training code; prints mean ± std over seeds.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from kdreg.config import load_params, student_config, teacher_config
from kdreg.datasets import build_dataset
from kdreg.layout import data_config
from kdreg.noise import NoisyLabels
from kdreg.train import train_student, train_teacher


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--levels", type=float, nargs="+", default=[0.0, 0.2, 0.4])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    params = load_params(args.params)
    ds = build_dataset("sinusoid", data_config(params, "sinusoid"))
    tcfg, scfg = teacher_config(params, "sinusoid"), student_config(params, "sinusoid")
    methods = params["methods"]
    rows = {p: {m: [] for m in ["teacher", *methods]} for p in args.levels}
    start = time.perf_counter()
    for p in args.levels:
        for seed in range(args.seeds):
            noisy = NoisyLabels.make(ds.y_dev, params["noise"]["kind"], p, seed, params["noise"]["spread"])
            teacher = train_teacher(ds, noisy, tcfg, seed, "cpu")
            rows[p]["teacher"].append(teacher.metrics["rmse"])
            for m in methods:
                rows[p][m].append(train_student(ds, noisy, teacher.t_dev, m, scfg, seed, "cpu").metrics["rmse"])
    print(f"sinusoid, {params['noise']['kind']} noise, clean-test RMSE, mean ± std over {args.seeds} seeds "
          f"({time.perf_counter() - start:.0f} s)\n")
    print("| method | " + " | ".join(f"p = {p:g}" for p in args.levels) + " |")
    print("|---|" + "---:|" * len(args.levels))
    for m in ["teacher", *methods]:
        cells = [f"{np.mean(rows[p][m]):.4f} ± {np.std(rows[p][m]):.4f}" for p in args.levels]
        print(f"| {m} | " + " | ".join(cells) + " |")
    for p in args.levels:
        if p > 0:
            ratio = np.mean(rows[p]["tor_multitask"]) / np.mean(rows[p]["scratch"])
            print(f"\np = {p:g}: tor_multitask / scratch = {ratio:.3f}", end="")
    print()


if __name__ == "__main__":
    main()
