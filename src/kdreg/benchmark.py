"""The benchmark suite's summary across datasets (params.yaml ``benchmark:``): how each student compares with
training from scratch on every real table, at every noise level.

Per dataset, level and model (from each dataset's runs table): the mean test error over seeds with its 95% CI,
the error relative to scratch's mean, the share of the scratch→oracle gap closed ``(scratch − m) / (scratch −
oracle)``, the rank among the students (the oracle, which sees clean labels, and the teacher are references, not
ranked), and whether the model is *best or tied-best*: its 95% CI overlaps the CI of the best student's mean.

Across datasets: the geometric mean of the relative error (ratios average multiplicatively), the mean and the
median of the gap closed (the median resists a dataset whose gap is tiny), the mean rank, and the number of
datasets where the model is best or tied-best.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from kdreg.methods import BASELINE, BOUND, TEACHER
from kdreg.noise import level_tag
from kdreg.results import average_folds, chosen_kinds, chosen_text, ci95, kind_columns, markdown

REFERENCES = (BOUND, TEACHER)  # not students: drawn and tabled, never ranked
REAL_GAP = 0.9                  # a dataset's gap is real where the oracle's error is at most this share of scratch's
HEADLINE_LEVELS = (0.2, 0.4)   # the levels the suite's verdict is stated at


def per_dataset(runs: dict[str, pd.DataFrame], metric: str) -> pd.DataFrame:
    """Long table: one row per (dataset, noise level, model)."""
    rows = []
    for dataset, df in runs.items():
        df, _ = average_folds(df)
        for level, g in df.groupby("noise_level", sort=True):
            stats = {m: (gm[metric].mean(), ci95(gm[metric].to_numpy(dtype=float)), len(gm))
                     for m, gm in g.groupby("model")}
            scratch = stats[BASELINE][0] if BASELINE in stats else np.nan
            oracle = stats[BOUND][0] if BOUND in stats else np.nan
            students = {m: s for m, s in stats.items() if m not in REFERENCES}
            best = min(students, key=lambda m: students[m][0]) if students else None
            order = sorted(students, key=lambda m: students[m][0])
            for model, (mean, ci, n) in stats.items():
                gap = (scratch - mean) / (scratch - oracle) if level > 0 and scratch - oracle > 0 else np.nan
                tied = np.nan
                if model in students:
                    b_mean, b_ci = students[best][:2]
                    tied = float(mean - np.nan_to_num(ci) <= b_mean + np.nan_to_num(b_ci))
                rows.append({"dataset": dataset, "noise_level": level, "model": model, "n": n, "mean": mean,
                             "ci95": ci, "relative": mean / scratch, "relative_to_oracle": mean / oracle,
                             "real_gap": bool(oracle <= REAL_GAP * scratch), "gap_closed": gap,
                             "rank": order.index(model) + 1 if model in students else np.nan, "best_or_tied": tied})
    return pd.DataFrame(rows)


def across(long: pd.DataFrame) -> pd.DataFrame:
    """One row per (noise level, model): the suite's summary."""
    rows = []
    for (level, model), g in long.groupby(["noise_level", "model"], sort=True):
        rows.append({"noise_level": level, "model": model, "datasets": g.dataset.nunique(),
                     "relative_geomean": float(np.exp(np.log(g.relative).mean())),
                     "oracle_relative_geomean": float(np.exp(np.log(g.relative_to_oracle).mean())),
                     "real_gap_datasets": int(g.real_gap.sum()),
                     "gap_closed_median_real": (g.gap_closed[g.real_gap].median()
                                                if g.gap_closed[g.real_gap].notna().any() else np.nan),
                     "gap_closed_mean": g.gap_closed.mean() if g.gap_closed.notna().any() else np.nan,
                     "gap_closed_median": g.gap_closed.median() if g.gap_closed.notna().any() else np.nan,
                     "rank_mean": g["rank"].mean() if g["rank"].notna().any() else np.nan,
                     "best_or_tied": int(g.best_or_tied.fillna(0).sum()) if model not in REFERENCES else np.nan})
    return pd.DataFrame(rows)


def _model_order(summary: pd.DataFrame) -> list[str]:
    """Students by mean rank at the highest level, best first; then the references."""
    top = summary[summary.noise_level == summary.noise_level.max()].set_index("model")
    students = sorted((m for m in top.index if m not in REFERENCES), key=lambda m: top.loc[m, "rank_mean"])
    return students + [m for m in REFERENCES if m in top.index]


def _grid(summary: pd.DataFrame, column: str, fmt, levels) -> pd.DataFrame:
    rows = []
    for model in _model_order(summary):
        sub = summary[summary.model == model].set_index("noise_level")[column]
        rows.append({"model": model, **{f"p={level_tag(lv)}": fmt(sub.get(lv, np.nan)) for lv in levels}})
    return pd.DataFrame(rows)


def _fmt(spec: str, scale: float = 1.0):
    return lambda v: "" if v is None or pd.isna(v) else f"{v * scale:{spec}}"


def teacher_kinds(runs: dict[str, pd.DataFrame], metric: str) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Teachers of ``kind: auto``: the kinds each dataset's models chose per level (``{kind} {models}``); per
    level each candidate kind's test error relative to the oracle, geometric mean across datasets (the chosen
    teacher as ``chosen``); and ``tor``'s rejection precision and recall per level by the kind of the teacher it
    read (mean and number of models). All empty where no dataset's teacher chose."""
    picks, ratios, tor = [], [], []
    for dataset, df in runs.items():
        df, _ = average_folds(df)
        chosen = chosen_kinds(df)
        if chosen.empty:
            continue
        # TOR's rejection against the truth, grouped by the kind of the teacher it read (same level and seed)
        kind_of = df[df.model == TEACHER].set_index(["noise_level", "seed"]).teacher_kind
        rejecting = df[(df.model == "tor") & (df.noise_level > 0)]
        for col in ("rejection_precision", "rejection_recall"):
            if col in rejecting.columns:
                for r in rejecting[["noise_level", "seed", col]].itertuples(index=False):
                    tor.append({"noise_level": r.noise_level, "kind": kind_of.get((r.noise_level, r.seed)),
                                "metric": col, "value": getattr(r, col)})
        picks += [{"dataset": dataset, "noise_level": level, "chosen": text}
                  for level, text in chosen_text(chosen).items()]
        columns = {"chosen": metric, **kind_columns(df.columns, metric)}
        for level, g in df.groupby("noise_level", sort=True):
            oracle = g.loc[g.model == BOUND, metric].mean()
            teachers = g[g.model == TEACHER]
            for name, col in columns.items():
                ratios.append({"noise_level": level, "teacher": name, "dataset": dataset,
                               "ratio": teachers[col].mean() / oracle})
    if not picks:
        return pd.DataFrame(), pd.DataFrame(), pd.DataFrame()
    ratios = pd.DataFrame(ratios).dropna()
    geo = ratios.groupby(["teacher", "noise_level"]).ratio.apply(lambda r: float(np.exp(np.log(r).mean())))
    tor = pd.DataFrame(tor, columns=["noise_level", "kind", "metric", "value"]).dropna()
    tor = tor.groupby(["kind", "metric", "noise_level"]).value.agg(["mean", "size"]).reset_index()
    return pd.DataFrame(picks), geo.reset_index(), tor


def _kinds_markdown(picks: pd.DataFrame, geo: pd.DataFrame, tor: pd.DataFrame, levels) -> list[str]:
    if picks.empty:
        return []
    parts = []
    if not tor.empty:
        tor = tor.assign(row=[f"{r.kind}: {r.metric.removeprefix('rejection_')}" for r in tor.itertuples()],
                         cell=[f"{r.mean:.2f} ({r.size})" for r in tor.itertuples()])
        wide_tor = tor.pivot(index="row", columns="noise_level", values="cell").reindex(
            columns=[lv for lv in levels if lv > 0]).fillna("")
        wide_tor.columns = [f"p={level_tag(lv)}" for lv in wide_tor.columns]
        parts.append(markdown(wide_tor.reset_index().rename(columns={"row": "teacher kind"}),
                              "`tor`'s rejection against the known corruption, by the kind of the teacher it read: "
                              "precision (share of rejected labels corrupted) and recall (share of corrupted labels "
                              "rejected), mean over every dataset's models (their number):"))
    wide = picks.pivot(index="dataset", columns="noise_level", values="chosen").reindex(columns=levels).fillna("")
    wide.columns = [f"p={level_tag(lv)}" for lv in wide.columns]
    grid = geo.pivot(index="teacher", columns="noise_level", values="ratio").reindex(columns=levels)
    grid = grid.map(lambda v: "" if pd.isna(v) else f"{v:.3f}")
    grid.columns = [f"p={level_tag(lv)}" for lv in grid.columns]
    return [markdown(wide.reset_index(), "Teacher kind chosen on the noisy validation split (`teacher.kind: auto`), "
                                         "models per kind:"),
            markdown(grid.reset_index(), "Each candidate teacher's test error relative to the oracle, geometric "
                                         "mean across datasets (reported, never used to choose; chosen: the teacher "
                                         "the students read):")] + parts


def summary_markdown(long: pd.DataFrame, summary: pd.DataFrame, title: str = "", kinds=None) -> str:
    levels = sorted(long.noise_level.unique())
    noisy = [lv for lv in levels if lv > 0]
    n = long.dataset.nunique()
    parts = [title] if title else []
    parts.append(markdown(_grid(summary, "rank_mean", _fmt(".2f"), levels),
                          f"Mean rank among the students across the {n} datasets (1 = lowest test error; the oracle "
                          "and the teacher are references, not ranked):"))
    parts.append(markdown(_grid(summary, "best_or_tied", _fmt(".0f"), levels),
                          f"Datasets (of {n}) where the model is best or tied-best (its 95% CI overlaps the best "
                          "student's):"))
    parts.append(markdown(_grid(summary, "oracle_relative_geomean", _fmt(".3f"), levels),
                          "Test error relative to the oracle (trained on the clean labels), geometric mean across "
                          "datasets (1: as good as clean labels):"))
    real = summary[summary.model == BOUND].set_index("noise_level")["real_gap_datasets"]
    parts.append(markdown(_grid(summary, "gap_closed_median_real", _fmt(".1f", 100), noisy),
                          "Share of the scratch→oracle gap closed, median over the datasets whose gap is real (oracle "
                          f"≤ {REAL_GAP:g}× scratch; per level: " +
                          ", ".join(f"p={level_tag(lv)} {int(real.get(lv, 0))}" for lv in noisy) + ") (%):"))
    parts.append(markdown(_grid(summary, "relative_geomean", _fmt(".3f"), levels),
                          "Test error relative to scratch, geometric mean across datasets (< 1: better than "
                          "scratch):"))
    parts.append(markdown(_grid(summary, "gap_closed_mean", _fmt(".1f", 100), noisy),
                          "Share of the scratch→oracle gap closed, mean across datasets (%; a dataset whose gap is "
                          "tiny swings the mean, see the gap sizes below):"))
    parts.append(markdown(_grid(summary, "gap_closed_median", _fmt(".1f", 100), noisy),
                          "Share of the scratch→oracle gap closed, median across datasets (%):"))
    oracle = long[long.model == BOUND].pivot(index="noise_level", columns="dataset", values="relative")
    parts.append(markdown(oracle.map(lambda v: f"{v:.3f}").reset_index().assign(
        noise_level=lambda d: [f"p={level_tag(v)}" for v in d.noise_level]),
        "The gap's size: the oracle's test error relative to scratch's, per dataset (1.000: no gap to close):"))
    for level in [lv for lv in HEADLINE_LEVELS if lv in levels]:
        sub = long[long.noise_level == level]
        cell = lambda r: ("" if pd.isna(r.gap_closed) else f"{100 * r.gap_closed:.0f}%") + \
            (" ★" if r.best_or_tied == 1 else "")
        wide = sub.assign(cell=[cell(r) for r in sub.itertuples()]).pivot(index="model", columns="dataset",
                                                                          values="cell")
        wide = wide.reindex([m for m in _model_order(summary) if m in wide.index]).fillna("")
        parts.append(markdown(wide.reset_index(), f"Gap closed per dataset at p = {level_tag(level)} (★: best or "
                                                  "tied-best student):"))
    if kinds is not None:
        parts += _kinds_markdown(*kinds, levels)
    return "\n\n".join(parts) + "\n"


def summarize(runs_csvs: dict[str, str], metric: str, long_out: str, summary_out: str, md_out: str,
              title: str = "") -> pd.DataFrame:
    """Read each dataset's runs table (``{dataset: path}``); write the per-dataset long CSV, the across-datasets
    CSV (the summary figure's data) and the markdown summary, each atomically."""
    from kdreg.io import atomic_path
    runs = {d: pd.read_csv(p) for d, p in runs_csvs.items()}
    long = per_dataset(runs, metric)
    summary = across(long)
    for frame, out in ((long, long_out), (summary, summary_out)):
        with atomic_path(out) as tmp:
            frame.to_csv(tmp, index=False, float_format="%.6g")
    with atomic_path(md_out) as tmp:
        tmp.write_text(summary_markdown(long, summary, title, teacher_kinds(runs, metric)))
    return summary
