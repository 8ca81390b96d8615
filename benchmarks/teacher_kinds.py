"""Teacher kinds on the benchmark suite's tables: how good is each teacher, and which one would validation pick?

    python benchmarks/teacher_kinds.py [--params params.yaml] [--levels 0 0.4] [--seeds 5] [--ensemble-size 3]
                                       [--datasets boston ...] [--out teacher_kinds.csv]

For every suite table and noise kind, at each level and seed, it trains the suite's teacher (``network``: its
params, a Tukey 3×128 MLP refitted with MSE on what the mixture keeps), an ``ensemble`` of that network, and
boosted trees (``gbdt``, squared and absolute error; the same refit round, on 5-fold out-of-fold predictions) on
the same noisy labels, and prints
each one's test RMSE (mean over seeds), what ``kind: auto`` would keep per model (the lowest noisy-validation
median absolute error), and the ratios the committed suite tables let us form: the teacher over the committed
``scratch`` student at p = 0 and over the committed ``oracle`` at the top level. Only teachers are trained; the
committed means come from ``results/tables/{name}.csv``, made on the CPU named in ``results/machine.json``.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
KINDS = {  # label -> teacher settings over the suite's own
    "network": {},
    "ensemble": {"kind": "ensemble"},
    # trees refine on out-of-fold predictions (kdreg refuses a tree refit without cross_fit)
    "gbdt_squared": {"kind": "gbdt", "loss": "mse", "cross_fit": 5, "gbdt": {"loss": "squared_error"}},
    "gbdt_absolute": {"kind": "gbdt", "loss": "mse", "cross_fit": 5, "gbdt": {"loss": "absolute_error"}},
}


def committed_mean(name: str, level: float, model: str) -> float:
    table = pd.read_csv(ROOT / "results" / "tables" / f"{name}.csv")
    row = table[(table.model == model) & (table.metric == "rmse") & np.isclose(table.noise_level, level)]
    return float(row["mean"].iloc[0]) if len(row) else float("nan")


def main() -> None:
    from kdreg.config import teacher_config
    from kdreg.datasets import build_dataset
    from kdreg.layout import data_config
    from kdreg.memory import keep_freed_memory
    from kdreg.noise import NoisyLabels
    from kdreg.teacher import train_teacher, train_teachers
    from kdreg.teacher_kinds import validation_error
    from kdreg.variants import benchmark_datasets, benchmark_kinds, resolve, result_names

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default=str(ROOT / "params.yaml"))
    ap.add_argument("--levels", type=float, nargs="+", default=[0.0, 0.4])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--ensemble-size", type=int, default=3)
    ap.add_argument("--datasets", nargs="+")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", help="also write the per-model rows here (CSV)")
    args = ap.parse_args()
    keep_freed_memory()
    torch.set_num_threads(args.threads)
    from kdreg.config import load_params
    params = load_params(args.params)
    names = result_names(params, resolve(params, ROOT / "workflow/schemas/params.schema.yaml", args.params))
    rows, start = [], time.perf_counter()
    for dataset in args.datasets or benchmark_datasets(params):
        for noise_kind in benchmark_kinds(params):
            name = f"{dataset}-benchmark_{noise_kind}"
            p = names[name][1]
            ds = build_dataset(dataset, data_config(p, dataset))
            members = [(lvl, s) for lvl in args.levels for s in range(args.seeds)]
            noisies = [NoisyLabels.make(ds.y_dev, noise_kind, lvl, s, p["noise"]["spread"]) for lvl, s in members]
            base = teacher_config(p, dataset)
            for label, extra in KINDS.items():
                cfg = {**base, **extra}
                if label == "ensemble":
                    cfg["ensemble_size"] = args.ensemble_size
                t0 = time.perf_counter()
                try:
                    results = train_teachers(ds, noisies, cfg, [s for _, s in members], "cpu")
                except ValueError:  # one model's refit failed (the mixture rejected every row): one at a time
                    results = []
                    for (lvl, s), noisy in zip(members, noisies):
                        try:
                            results.append(train_teacher(ds, noisy, cfg, s, "cpu"))
                        except ValueError as err:
                            print(f"  {name} {label} p={lvl:g} seed {s}: {err}", flush=True)
                            results.append(None)
                took = time.perf_counter() - t0
                for (lvl, s), noisy, r in zip(members, noisies, results):
                    rows.append({"name": name, "dataset": dataset, "noise_kind": noise_kind, "level": lvl, "seed": s,
                                 "kind": label, "rmse": r.metrics["rmse"] if r else np.nan,
                                 "val_error": validation_error(r, ds, noisy) if r else np.inf,
                                 "kept": (r.metrics.get("refine") or [{}])[-1].get("kept_fraction") if r else 0.0,
                                 "seconds": took / len(members)})
                print(f"  {name} {label}: {took:.0f} s", flush=True)
    df = pd.DataFrame(rows)
    if args.out:
        df.to_csv(args.out, index=False, float_format="%.6g")
    # auto per model: the kind with the lowest noisy-validation error (first listed of ties)
    order = list(KINDS)
    picked = (df.assign(_o=df.kind.map(order.index)).sort_values(["val_error", "_o"])
              .groupby(["name", "level", "seed"], sort=False).head(1))
    auto = picked.assign(kind="auto")
    counts = picked.groupby(["name", "level"]).kind.agg(lambda k: ", ".join(f"{v} {n}" for v, n in
                                                                          k.value_counts().items()))
    full = pd.concat([df, auto], ignore_index=True)
    means = full.groupby(["name", "level", "kind"], sort=False).rmse.mean().unstack("kind")[order + ["auto"]]
    failed = df[df.rmse.isna()].groupby(["name", "level", "kind"]).size()
    if len(failed):
        print("\nrefits that failed (the mixture rejected every row; left out of the means):\n" + failed.to_string())
    kept = df.groupby(["level", "kind"]).kept.median().unstack("kind")[order]
    print("\nmedian share of the rows the refit kept, over tables, noise kinds and seeds:\n" + kept.to_string())
    top = max(args.levels)
    print(f"\nteachers' test RMSE, mean over {args.seeds} seeds; auto's picks per model; the committed suite's "
          "scratch and oracle students\n")
    print("| results name | p | " + " | ".join(order) + " | auto | auto's picks | scratch | oracle |")
    print("|---|---:|" + "---:|" * (len(order) + 1) + "---|---:|---:|")
    ratios = []
    for (name, level), row in means.iterrows():
        scratch, oracle = committed_mean(name, level, "scratch"), committed_mean(name, level, "oracle")
        cells = " | ".join(f"{row[k]:.4g}" for k in order + ["auto"])
        print(f"| {name} | {level:g} | {cells} | {counts[name, level]} | {scratch:.4g} | {oracle:.4g} |")
        ratios.append({"name": name, "level": level, **{k: row[k] for k in order + ["auto"]},
                       "scratch": scratch, "oracle": oracle})
    r = pd.DataFrame(ratios)
    print("\ngeometric means over the tables\n")
    print("| measure | " + " | ".join(order + ["auto"]) + " |")
    print("|---|" + "---:|" * (len(order) + 1))
    for label, sel, ref in (("teacher / scratch at p = 0", r.level == 0, "scratch"),
                            (f"teacher / oracle at p = {top:g}, replace", (r.level == top) &
                             r.name.str.endswith("replace"), "oracle"),
                            (f"teacher / scratch at p = {top:g}, resample", (r.level == top) &
                             r.name.str.endswith("resample"), "scratch")):
        g = r[sel]
        if len(g):
            print(f"| {label} | " + " | ".join(f"{np.exp(np.mean(np.log(g[k] / g[ref]))):.3f}"
                                                for k in order + ["auto"]) + " |")
    print(f"\n{len(df)} teachers in {time.perf_counter() - start:.0f} s, {args.threads} threads")


if __name__ == "__main__":
    main()
