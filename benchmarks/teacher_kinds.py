"""Teacher kinds on the benchmark suite's tables: how good is each teacher, and what do its students make of it?

    python benchmarks/teacher_kinds.py [--params params.yaml] [--levels 0 0.4] [--seeds 5] [--ensemble-size 3]
                                       [--kinds network ensemble gbdt] [--methods kd tor tor_multitask]
                                       [--teachers-only] [--datasets boston ...] [--out teacher_kinds.csv]

For every suite table and noise kind, at each level and seed, it trains each teacher kind on the same noisy labels,
with the suite's settings as ``kind: auto`` gives them to its candidates (``network``: a Tukey 3×128 MLP refitted
with MSE on what the mixture keeps; ``ensemble``: the mean of ``--ensemble-size`` such networks; ``gbdt``:
absolute-error boosted trees refined on their own 5 folds' out-of-fold predictions; ``gbdt_squared``: the same
with squared error). Then, per kind, the students of ``--methods`` (the suite's student settings) distil that
kind's cached predictions, beside ``scratch`` and ``oracle`` trained once on the same labels and seeds. ``auto``
rows are what ``kind: auto`` would give over a set of the kinds: per model, the kind with the lowest
noisy-validation median absolute error (never test), and that kind's students. It prints the suite's target
measures (geometric means over the tables: teacher and students over ``scratch`` at p = 0 and under ``resample``
at the top level, over ``oracle`` under ``replace`` there), ``tor_multitask`` per table, and TOR's rejection
precision and recall per kind. Nothing is written into ``results/``; ``--out`` keeps the per-model rows.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
KINDS = ("network", "ensemble", "gbdt", "gbdt_squared")
REFERENCES = ("scratch", "oracle")


def kind_config(base: dict, label: str, ensemble_size: int) -> dict:
    """The teacher config of one kind label, as the suite's ``kind: auto`` would train that candidate."""
    from kdreg.teacher_kinds import candidate_config
    cfg = candidate_config({**base, "ensemble_size": ensemble_size}, "gbdt" if label.startswith("gbdt") else label)
    if label == "gbdt_squared":
        cfg["gbdt"] = {**cfg["gbdt"], "loss": "squared_error"}
    return cfg


def auto_sets(kinds: list[str]) -> dict[str, list[str]]:
    """The candidate sets to report ``auto`` over: the suite's (network, absolute-error trees) and all run kinds."""
    sets = {}
    if {"network", "gbdt"} <= set(kinds):
        sets["auto(network,gbdt)"] = ["network", "gbdt"]
    if len(kinds) > 1:
        sets[f"auto({','.join(kinds)})"] = list(kinds)
    return sets


def train_kind_teachers(ds, noisies, cfg, seeds) -> list:
    """Every model's teacher of one kind, as ``kind: auto`` trains a candidate; None where a model's refit kept no
    row (that kind drops out for that model)."""
    from kdreg.teacher import train_teacher, train_teachers
    from kdreg.teacher_kinds import AllRowsRejected, train_candidate
    results = train_candidate(ds, noisies, cfg, seeds, train_teachers, train_teacher, device="cpu")
    return [None if isinstance(r, AllRowsRejected) else r for r in results]


def student_rows(ds, noisies, t_devs, p, dataset, methods, seeds, tags) -> list[dict]:
    """Train every method's student per member (one stack) and return a row per (member, method)."""
    from kdreg.config import student_config
    from kdreg.student import train_method_students
    results = train_method_students(ds, noisies, t_devs, {m: student_config(p, dataset, m) for m in methods},
                                    seeds, "cpu")
    rows = []
    for m, runs in results.items():
        for tag, r in zip(tags, runs):
            rows.append({**tag, "model": m, "rmse": r.metrics["rmse"],
                         "precision": r.metrics.get("rejection_precision", np.nan),
                         "recall": r.metrics.get("rejection_recall", np.nan)})
    return rows


def run(args) -> pd.DataFrame:
    from kdreg.config import load_params, teacher_config
    from kdreg.datasets import build_dataset
    from kdreg.layout import data_config
    from kdreg.noise import NoisyLabels
    from kdreg.teacher_kinds import validation_error
    from kdreg.variants import benchmark_datasets, benchmark_kinds, resolve, result_names
    params = load_params(args.params)
    names = result_names(params, resolve(params, ROOT / "workflow/schemas/params.schema.yaml", args.params))
    rows = []
    for dataset in args.datasets or benchmark_datasets(params):
        for noise_kind in benchmark_kinds(params):
            name = f"{dataset}-benchmark_{noise_kind}"
            p = names[name][1]
            ds = build_dataset(dataset, data_config(p, dataset))
            members = [(lvl, s) for lvl in args.levels for s in range(args.seeds)]
            seeds = [s for _, s in members]
            noisies = [NoisyLabels.make(ds.y_dev, noise_kind, lvl, s, p["noise"]["spread"]) for lvl, s in members]
            tag = [{"name": name, "noise_kind": noise_kind, "level": lvl, "seed": s} for lvl, s in members]
            distilled = []  # (tag, noisy labels, teacher predictions) of every teacher that trained
            for label in args.kinds:
                t0 = time.perf_counter()
                teachers = train_kind_teachers(ds, noisies, kind_config(teacher_config(p, dataset), label,
                                                                       args.ensemble_size), seeds)
                for t, noisy, r in zip(tag, noisies, teachers):
                    rows.append({**t, "kind": label, "model": "teacher", "rmse": r.metrics["rmse"] if r else np.nan,
                                 "val_error": validation_error(r, ds, noisy) if r else np.inf,
                                 "kept": (r.metrics.get("refine") or [{}])[-1].get("kept_fraction") if r else 0.0})
                    if r is not None:
                        distilled.append(({**t, "kind": label}, noisy, r.t_dev))
                print(f"  {name} {label}: teachers {time.perf_counter() - t0:.0f} s", flush=True)
            if args.teachers_only:
                continue
            t0 = time.perf_counter()
            rows += student_rows(ds, noisies, [None] * len(noisies), p, dataset, REFERENCES, seeds,
                                 [{**t, "kind": "reference"} for t in tag])
            s_tags, s_noisies, t_devs = (list(c) for c in zip(*distilled))
            rows += student_rows(ds, s_noisies, t_devs, p, dataset, args.methods, [t["seed"] for t in s_tags], s_tags)
            print(f"  {name}: {len(s_tags) * len(args.methods) + len(tag) * 2} students "
                  f"{time.perf_counter() - t0:.0f} s", flush=True)
    return pd.DataFrame(rows)


def with_auto(df: pd.DataFrame, kinds: list[str]) -> pd.DataFrame:
    """Add the rows ``kind: auto`` over each candidate set would give: per model, the picked kind's rows."""
    key = ["name", "level", "seed"]
    teachers = df[df.model == "teacher"]
    out = [df]
    for label, cands in auto_sets(kinds).items():
        t = teachers[teachers.kind.isin(cands)]
        picked = (t.assign(_o=t.kind.map(cands.index)).sort_values(["val_error", "_o"])  # first listed of ties
                  .groupby(key, sort=False).head(1)[key + ["kind"]])
        chosen = df.merge(picked, on=key + ["kind"])
        out.append(chosen.assign(picked=chosen.kind, kind=label))
    return pd.concat(out, ignore_index=True)


def committed_runs(name: str) -> pd.DataFrame | None:
    """The committed suite's runs table of a results name (every model and seed), or None if there is none."""
    from kdreg.layout import RESULTS
    path = ROOT / RESULTS["runs"].format(name=name)
    return pd.read_csv(path) if path.exists() else None


def committed_references(df: pd.DataFrame) -> pd.Series:
    """The committed suite's ``scratch`` and ``oracle`` test RMSE means over the levels and seeds run here, indexed
    like the report's means."""
    out = {}
    for name, mine in df.groupby("name"):
        runs = committed_runs(name)
        if runs is None:
            continue
        runs = runs[runs.model.isin(REFERENCES) & runs.seed.isin(mine.seed.unique())]
        for (level, model), rmse in runs.groupby(["noise_level", "model"]).rmse.mean().items():
            if np.isclose(mine.level, level).any():
                out[name, float(level), "reference", model] = float(rmse)
    return pd.Series(out, dtype=float)


def geo(ratios: pd.Series) -> float:
    return float(np.exp(np.log(ratios).mean())) if len(ratios) else float("nan")


def report(df: pd.DataFrame, kinds: list[str], top: float, methods: list[str]) -> None:
    full = with_auto(df, kinds)
    columns = list(kinds) + list(auto_sets(kinds))
    means = full.groupby(["name", "level", "kind", "model"]).rmse.mean()
    kept = df[df.model == "teacher"].groupby(["level", "kind"]).kept.median().unstack("kind")[list(kinds)]
    print("\nmedian share of the rows the refit kept, over tables, noise kinds and seeds:\n" + kept.to_string())
    failed = df[(df.model == "teacher") & df.rmse.isna()].groupby(["name", "level", "kind"]).size()
    if len(failed):
        print("\nrefits that failed (the mixture rejected every row; that kind dropped for the model):\n"
              + failed.to_string())
    names = sorted(df.name.unique())
    has_refs = "reference" in set(df.kind)
    if not has_refs:  # teachers only: the committed suite's scratch and oracle means (same labels and seeds)
        means = pd.concat([means, committed_references(df)])
    measures = [("/ scratch at p = 0", 0.0, "", "scratch"), (f"/ oracle at p = {top:g}, replace", top, "replace",
                "oracle"), (f"/ scratch at p = {top:g}, resample", top, "resample", "scratch")]
    models = ["teacher"] + (list(methods) if has_refs else [])
    what = "students trained here" if has_refs else "teachers only, over the committed scratch and oracle means"
    print(f"\ngeometric means over the tables ({what})\n")
    print("| measure | model | " + " | ".join(columns) + " |")
    print("|---|---|" + "---:|" * len(columns))
    for label, level, noise, ref in measures:
        sel = [n for n in names if n.endswith(noise) and (n, level, "reference", ref) in means.index]
        for model in models:
            cells = [geo(pd.Series([means.get((n, level, k, model), np.nan) / means[n, level, "reference", ref]
                                    for n in sel]).dropna()) for k in columns]
            print(f"| {label} | {model} | " + " | ".join(f"{c:.3f}" for c in cells) + " |")
    if not has_refs:
        return
    picks = full[(full.model == "teacher") & full.kind.str.startswith("auto")]
    print("\nper table: tor_multitask over the reference (p = 0 and resample: scratch; replace: oracle), and the "
          "kinds each auto picked (models)\n")
    print("| results name | p | " + " | ".join(columns) + " | picks |")
    print("|---|---:|" + "---:|" * len(columns) + "---|")
    for name in names:
        for level in sorted(df.level.unique()):
            ref = "oracle" if name.endswith("replace") and level > 0 else "scratch"
            cells = [means.get((name, level, k, "tor_multitask"), np.nan) / means[name, level, "reference", ref]
                     for k in columns]
            got = picks[(picks.name == name) & (picks.level == level)]
            who = "; ".join(f"{a}: " + ", ".join(f"{k} {n}" for k, n in g.picked.value_counts().items())
                            for a, g in got.groupby("kind"))
            print(f"| {name} | {level:g} | " + " | ".join(f"{c:.3f}" for c in cells) + f" | {who} |")
    tor = full[(full.model == "tor") & (full.level > 0)]
    if len(tor):
        pr = tor.groupby(["noise_kind", "level", "kind"])[["precision", "recall"]].mean().unstack("kind")
        print("\nTOR's rejection (tor students, mean over tables and seeds), precision / recall\n")
        for (noise, level), row in pr.iterrows():
            print(f"{noise} p={level:g}: " + "; ".join(f"{k} {row['precision', k]:.2f} / {row['recall', k]:.2f}"
                                                        for k in columns if ("precision", k) in row.index))


def check_committed(df: pd.DataFrame) -> None:
    """The models trained here that the committed suite also trained (the same labels and seeds): ``scratch``,
    ``oracle`` and the network teacher (its candidate's test RMSE). Stacks of another size round differently, and
    a refit that keeps one row more or less then drifts, so most match to print precision and a few do not."""
    close, total, worst = 0, 0, 0.0
    for name, mine in df.groupby("name"):
        runs = committed_runs(name)
        if runs is None:
            continue
        refs = runs[runs.model.isin(REFERENCES)][["noise_level", "seed", "model", "rmse"]]
        net = runs[runs.model == "teacher"][["noise_level", "seed", "kind_network_rmse"]].rename(
            columns={"kind_network_rmse": "rmse"}).assign(model="teacher")
        committed = pd.concat([refs, net]).rename(columns={"noise_level": "level", "rmse": "committed"})
        here = mine[(mine.kind == "reference") | ((mine.kind == "network") & (mine.model == "teacher"))]
        both = here.merge(committed, on=["level", "seed", "model"]).dropna(subset=["rmse", "committed"])
        diff = (both.rmse / both.committed - 1).abs()
        close, total, worst = close + int((diff < 1e-4).sum()), total + len(both), max(worst, float(diff.max()))
    print(f"\nagainst the committed suite's runs (scratch, oracle, the network teacher): {close} of {total} within "
          f"0.01%, the largest relative difference {worst:.3g}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default=str(ROOT / "params.yaml"))
    ap.add_argument("--levels", type=float, nargs="+", default=[0.0, 0.4])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--ensemble-size", type=int, default=3)
    ap.add_argument("--kinds", nargs="+", choices=KINDS, default=["network", "ensemble", "gbdt"])
    ap.add_argument("--methods", nargs="+", default=["kd", "tor", "tor_multitask"])
    ap.add_argument("--teachers-only", action="store_true")
    ap.add_argument("--datasets", nargs="+")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", help="also write the per-model rows here (CSV)")
    args = ap.parse_args()
    from kdreg.memory import keep_freed_memory
    from kdreg.trees import set_tree_workers
    keep_freed_memory()
    torch.set_num_threads(args.threads)
    set_tree_workers(args.threads)  # trees side by side in worker processes (the same bytes as one at a time)
    start = time.perf_counter()
    df = run(args)
    if args.out:
        df.to_csv(args.out, index=False, float_format="%.6g")
    report(df, args.kinds, max(args.levels), args.methods)
    if not args.teachers_only:
        check_committed(df)
    n_teachers = int((df.model == "teacher").sum())
    print(f"\n{n_teachers} teachers and {len(df) - n_teachers} students in {time.perf_counter() - start:.0f} s, "
          f"{args.threads} threads")


if __name__ == "__main__":
    main()
