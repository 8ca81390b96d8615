"""Boosted-tree teachers fitted in this process against in worker processes (a job's ``--threads``), in one run.

    python benchmarks/tree_workers.py [--dataset boston] [--noise replace] [--seeds 5] [--workers 2]

The suite's tree candidate as the committed params give it (``teacher.gbdt``: absolute-error trees refined once
on their own 5 folds' out-of-fold predictions, the mixture's rejection) for one table and noise kind, at every
noise level × seed (one teacher job's models): once with every fit in this process (scikit-learn's OpenMP at
its default threads, the pipeline's way before worker processes), once handed out to ``--workers`` processes of one
thread each. Prints both wall times and their ratio, and checks that the teachers are the same bytes.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    from kdreg.config import load_params, teacher_config
    from kdreg.datasets import build_dataset
    from kdreg.layout import data_config
    from kdreg.noise import NoisyLabels
    from kdreg.teacher_kinds import tree_folds
    from kdreg.tree_teacher import train_tree_teachers
    from kdreg.trees import set_tree_workers
    from kdreg.variants import resolve, result_names

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default=str(ROOT / "params.yaml"))
    ap.add_argument("--dataset", default="boston")
    ap.add_argument("--noise", default="replace")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.workers)
    params = load_params(args.params)
    names = result_names(params, resolve(params, ROOT / "workflow/schemas/params.schema.yaml", args.params))
    p = names[f"{args.dataset}-benchmark_{args.noise}"][1]
    ds = build_dataset(args.dataset, data_config(p, args.dataset))
    members = [(level, s) for level in p["noise"]["levels"] for s in range(args.seeds)]
    noisies = [NoisyLabels.make(ds.y_dev, args.noise, level, s, p["noise"]["spread"]) for level, s in members]
    seeds = [s for _, s in members]
    # the auto teacher's tree candidate, as kdreg.teacher_kinds.train_auto builds it
    base = {k: v for k, v in teacher_config(p, args.dataset).items() if k not in ("kind", "auto_kinds", "model")}
    cfg = tree_folds({**base, "kind": "gbdt", "loss": "mse", "refine_loss": None})
    k_folds, rounds = int(cfg.get("cross_fit", 1)), int(cfg.get("refine_rounds", 0))
    fits = len(members) * k_folds * (rounds + 1)

    times, results = {}, {}
    for label, workers in (("in this process", 1), (f"{args.workers} worker processes", args.workers)):
        set_tree_workers(workers)
        start = time.perf_counter()
        results[label] = train_tree_teachers(ds, noisies, cfg, seeds)
        times[label] = time.perf_counter() - start
    here, pooled = results.values()
    same = all(np.array_equal(a.t_dev, b.t_dev) and np.array_equal(a.t_test, b.t_test) and a.metrics == b.metrics
               and all(torch.equal(sa[n], sb[n]) for sa, sb in zip(a.states, b.states) for n in sa)
               for a, b in zip(here, pooled))
    print(f"{args.dataset} {args.noise}: {len(members)} tree teachers, {fits} fits "
          f"({k_folds} folds × {rounds + 1} rounds), {int((~ds.val).sum())} training rows\n")
    print("| fitted | wall s | s per fit |\n|---|---:|---:|")
    for label, took in times.items():
        print(f"| {label} | {took:.1f} | {took / fits:.3f} |")
    first, second = times.values()
    print(f"\nin this process / worker processes: **{first / second:.2f}×**; the same teachers byte for byte: {same}")
    if not same:
        raise SystemExit("the teachers differ: worker processes must give the fits made here")


if __name__ == "__main__":
    main()
