"""Stacked vs one-model-at-a-time training of the same set of sinusoid models, side by side in one run.

    python benchmarks/train_throughput.py [--params params.yaml] [--methods scratch tor_multitask]
                                          [--teachers 10] [--threads 1]

Each workload (a student method over every noise level x seed of params.yaml, or N teachers) is trained both
ways, each in a fresh process so that peak memory (ru_maxrss) belongs to that variant alone. Timing starts
after imports and data preparation, so it measures training. The script prints models per second, wall time,
peak RSS and the speed-up, and checks that both ways give the same test RMSE.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np


def _work(kind, name, stacked, params_path, threads, n_teachers):
    import torch

    from kdreg.config import load_params, student_config, teacher_config
    from kdreg.datasets import build_dataset
    from kdreg.layout import data_config
    from kdreg.noise import NoisyLabels
    from kdreg.train import train_students, train_teachers
    torch.set_num_threads(threads)
    params = load_params(params_path)
    ds = build_dataset("sinusoid", data_config(params, "sinusoid"))
    members = [(lvl, s) for lvl in params["noise"]["levels"] for s in range(params["seeds"])]
    if kind == "teacher":
        members = members[:n_teachers]
    noisies = [NoisyLabels.make(ds.y_dev, params["noise"]["kind"], lvl, s, params["noise"]["spread"])
               for lvl, s in members]
    seeds = [s for _, s in members]
    # Students learn from a fixed stand-in teacher (the clean labels) so the workload is the students' alone.
    t_devs = [ds.y_dev] * len(members)
    start = time.perf_counter()
    if kind == "teacher":
        res = train_teachers(ds, noisies, teacher_config(params, "sinusoid"), seeds, "cpu", stacked=stacked)
    else:
        res = train_students(ds, noisies, t_devs, name, student_config(params, "sinusoid", name), seeds, "cpu",
                             stacked=stacked)
    wall = time.perf_counter() - start
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return wall, rss_mib, [r.metrics["rmse"] for r in res]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--methods", nargs="+", default=["scratch", "tor_multitask"])
    ap.add_argument("--teachers", type=int, default=10, help="teachers in the teacher workload (0: skip)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--child", nargs=3, metavar=("KIND", "NAME", "STACKED"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:  # one variant in a fresh process: print its result as JSON
        kind, name, stacked = args.child
        print(json.dumps(_work(kind, name, stacked == "1", args.params, args.threads, args.teachers)))
        return
    workloads = [("student", m) for m in args.methods] + ([("teacher", "teacher")] if args.teachers else [])
    print(f"torch threads per process: {args.threads}\n")
    print("| workload | models | one at a time: s (models/s) | stacked: s (models/s) | speed-up "
          "| peak RSS one / stacked (MiB) | max abs RMSE difference |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for kind, name in workloads:
        out = {}
        for stacked in (False, True):
            cmd = [sys.executable, __file__, "--params", args.params, "--threads", str(args.threads),
                   "--teachers", str(args.teachers), "--child", kind, name, str(int(stacked))]
            out[stacked] = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
        (w1, r1, m1), (w2, r2, m2) = out[False], out[True]
        n = len(m1)
        diff = float(np.max(np.abs(np.array(m1) - np.array(m2))))
        print(f"| {name} | {n} | {w1:.1f} ({n / w1:.2f}) | {w2:.1f} ({n / w2:.2f}) | {w1 / w2:.1f}x "
              f"| {r1:.0f} / {r2:.0f} | {diff:.1e} |", flush=True)


if __name__ == "__main__":
    main()
