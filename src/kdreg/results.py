"""From finished runs to the numbers a reader sees: per-run table, mean / std / 95% CI over seeds, the error
relative to ``scratch`` and the share of the scratch-to-oracle gap closed, and the small CSVs behind each plot."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from kdreg.methods import BASELINE, BOUND, METHODS, TEACHER
from kdreg.noise import level_tag

HEADS = ("label", "teacher", "mean")


def collect(run_dirs) -> pd.DataFrame:
    """One row per finished run (teacher or student): its identity and every scalar metric."""
    rows = []
    for d in run_dirs:
        m = json.loads((Path(d) / "metrics.json").read_text())
        rows.append({k: v for k, v in m.items() if not isinstance(v, (list, dict))})
    if not rows:
        raise ValueError("no finished runs to collect; train the teachers and students first")
    df = pd.DataFrame(rows)
    order = ["dataset", "noise_kind", "noise_level", "seed", "model"]
    return df[order + sorted(c for c in df.columns if c not in order)].sort_values(order[2:5], kind="stable")


def ci95(values: np.ndarray) -> float:
    """Half-width of the t-based 95% confidence interval of the mean (NaN with fewer than two values)."""
    values = values[~np.isnan(values)]
    if len(values) < 2:
        return float("nan")
    return float(stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values)))


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """Long table: one row per (noise level, model, metric) with n, mean, std, ci95."""
    metric_cols = [c for c in runs.columns if c not in ("dataset", "noise_kind", "noise_level", "seed", "model")
                   and pd.api.types.is_numeric_dtype(runs[c])]
    out = []
    for (level, model), g in runs.groupby(["noise_level", "model"], sort=True):
        for col in metric_cols:
            v = g[col].to_numpy(dtype=float)
            if np.isnan(v).all():
                continue
            ok = v[~np.isnan(v)]
            out.append({"noise_level": level, "model": model, "metric": col, "n": len(ok), "mean": ok.mean(),
                        "std": ok.std(ddof=1) if len(ok) > 1 else float("nan"), "ci95": ci95(v)})
    return pd.DataFrame(out)


def add_relative(summary: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Add ``vs_scratch`` (mean / scratch's mean) and ``gap_closed`` ((scratch − m) / (scratch − oracle))."""
    s = summary.copy()
    s["vs_scratch"], s["gap_closed"] = np.nan, np.nan
    for level, g in s[s.metric.str.endswith(metric)].groupby("noise_level"):
        base = g[(g.model == BASELINE) & (g.metric == metric)]["mean"]
        oracle = g[(g.model == BOUND) & (g.metric == metric)]["mean"]
        if base.empty:
            continue
        b = float(base.iloc[0])
        idx = g.index
        s.loc[idx, "vs_scratch"] = s.loc[idx, "mean"] / b
        students = g[~g.model.isin([TEACHER, BASELINE, BOUND])].index  # the gap is a students' measure
        if not oracle.empty and b - float(oracle.iloc[0]) > 0 and level > 0:
            s.loc[students, "gap_closed"] = (b - s.loc[students, "mean"]) / (b - float(oracle.iloc[0]))
    return s


# Per-label metrics of tasks whose labels have different units (rotated images: degrees and a log scale), kept
# beside the headline metric where a dataset reports them.
PER_LABEL = ("rmse_rotation_deg", "rmse_log_scale", "mae_rotation_deg")


def metrics_json(summary: pd.DataFrame, metric: str) -> dict:
    """Flat keys for ``dvc metrics diff``: ``p0.2.tor_multitask.rmse_mean``, ``..._ci95``, ``..._vs_scratch``."""
    keep = {metric, "mae", *(f"{h}_head_{metric}" for h in HEADS), "rejection_precision", "rejection_recall",
            *PER_LABEL}
    keep |= set(kind_columns(summary.metric.unique(), metric).values())  # kind auto's candidates
    out = {}
    for r in summary[summary.metric.isin(keep)].itertuples():
        key = f"p{level_tag(r.noise_level)}.{r.model}.{r.metric}"
        out[f"{key}_mean"] = r.mean
        out[f"{key}_ci95"] = r.ci95
        if r.metric == metric and not np.isnan(r.vs_scratch):
            out[f"{key}_vs_scratch"] = r.vs_scratch
        if r.metric == metric and not np.isnan(r.gap_closed):
            out[f"{key}_gap_closed"] = r.gap_closed
    return {k: round(float(v), 6) for k, v in sorted(out.items())}


def table(summary: pd.DataFrame, metric: str, models: list[str]) -> pd.DataFrame:
    """Wide table, rows = model (and each head of two-headed students), columns = noise levels."""
    levels = sorted(summary.noise_level.unique())
    rows = []
    for model in models:
        variants = [(model, metric)]
        if not summary[(summary.model == model) & (summary.metric == f"teacher_head_{metric}")].empty:
            variants += [(f"{model} (teacher head)", f"teacher_head_{metric}"),
                         (f"{model} (mean of heads)", f"mean_head_{metric}")]
        for label, col in variants:
            row = {"model": label}
            for level in levels:
                hit = summary[(summary.model == model) & (summary.metric == col) & (summary.noise_level == level)]
                row[f"p={level_tag(level)}"] = (f"{hit['mean'].iloc[0]:.4f} ± {hit['ci95'].iloc[0]:.4f}"
                                                       if not hit.empty else "")
            rows.append(row)
    return pd.DataFrame(rows)


def kind_columns(names, metric: str) -> dict[str, str]:
    """``{kind: name}`` of the names that hold a ``kind: auto`` candidate's ``metric`` (``kind_gbdt_rmse``)."""
    prefix, suffix = "kind_", f"_{metric}"
    return {n[len(prefix):-len(suffix)]: n for n in sorted(names)
            if n.startswith(prefix) and n.endswith(suffix) and n.count("_") == metric.count("_") + 2}


def chosen_text(chosen: pd.DataFrame) -> dict[float, str]:
    """Per noise level, the models per chosen kind as one cell: ``gbdt 2, network 3``."""
    return {level: ", ".join(f"{r.kind} {r.models}" for r in g.itertuples())
            for level, g in chosen.groupby("noise_level", sort=True)}


def chosen_kinds(runs: pd.DataFrame) -> pd.DataFrame:
    """Teachers of ``kind: auto``: one row per (noise level, kind) with the models that chose it and their share;
    empty where no teacher chose (a fixed kind)."""
    cols = ["noise_level", "kind", "models", "share"]
    if "teacher_kind" not in runs.columns:
        return pd.DataFrame(columns=cols)
    teachers = runs[(runs.model == TEACHER) & runs.teacher_kind.notna()]
    rows = [{"noise_level": level, "kind": str(kind), "models": int(n), "share": n / len(g)}
            for level, g in teachers.groupby("noise_level", sort=True)
            for kind, n in g.teacher_kind.astype(str).value_counts().sort_index().items()]
    return pd.DataFrame(rows, columns=cols)


def chosen_kinds_markdown(chosen: pd.DataFrame, summary: pd.DataFrame, metric: str) -> str:
    """The teacher kind validation chose per level, and each candidate kind's test error beside it (reported only:
    the choice read the noisy validation split alone)."""
    if chosen.empty:
        return ""
    levels = sorted(summary.noise_level.unique())
    cell = chosen_text(chosen)
    rows = [{"teacher": "chosen on validation (models)",
             **{f"p={level_tag(lv)}": cell.get(lv, "") for lv in levels}}]
    for kind, name in kind_columns(summary.metric.unique(), metric).items():
        by = summary[(summary.model == TEACHER) & (summary.metric == name)].set_index("noise_level")
        rows.append({"teacher": f"{kind}: test {metric}", **{
            f"p={level_tag(lv)}": (f"{by.loc[lv, 'mean']:.4f} ± {by.loc[lv, 'ci95']:.4f}" if lv in by.index else "")
            for lv in levels}})
    return "\n\n" + markdown(pd.DataFrame(rows), "Teacher kind (`teacher.kind: auto`): the kind each model chose "
                               "on the noisy validation split, and each candidate's test error, mean ± 95% CI "
                               "(reported, never used to choose):")


def markdown(wide: pd.DataFrame, title: str) -> str:
    header = "| " + " | ".join(wide.columns) + " |\n|---|" + "---:|" * (len(wide.columns) - 1) + "\n"
    body = "".join("| " + " | ".join(str(v) for v in row) + " |\n" for row in wide.itertuples(index=False))
    return f"{title}\n\n{header}{body}"


def error_vs_noise(summary: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Plot data: one row per (model, noise level) with mean and the 95% band."""
    s = summary[summary.metric == metric][["model", "noise_level", "n", "mean", "ci95"]].copy()
    s["low"], s["high"] = s["mean"] - s["ci95"], s["mean"] + s["ci95"]
    return s.rename(columns={"mean": metric}).sort_values(["model", "noise_level"]).reset_index(drop=True)


def error_vs_noise_wide(long: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The same means, one column per model: the shape ``dvc plots`` draws as one line per column."""
    return long.pivot(index="noise_level", columns="model", values=metric).reset_index()


def rejection(summary: pd.DataFrame) -> pd.DataFrame:
    s = summary[summary.metric.isin(["rejection_precision", "rejection_recall"])]
    if s.empty:
        return pd.DataFrame(columns=["model", "noise_level", "metric", "mean", "ci95"])
    return s[["model", "noise_level", "metric", "n", "mean", "ci95"]].sort_values(
        ["model", "metric", "noise_level"]).reset_index(drop=True)


def fits(data_path: str, noisy_path: str, teacher_run: str, student_runs: dict[str, str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Plot data for a 1-D input: the curves on the test grid (clean target, teacher, each student's label head)
    and the training points (noisy label, whether corrupted)."""
    from kdreg.data import Dataset
    from kdreg.io import load_npz
    from kdreg.noise import NoisyLabels
    ds, noisy = Dataset.load(data_path), NoisyLabels.load(noisy_path)
    if ds.x_test.ndim != 2 or ds.x_test.shape[1] != 1 or ds.label_dim != 1:
        raise ValueError(f"fit curves need a 1-D input and label; {ds.name} has inputs {ds.x_test.shape[1:]}")
    curves = {"x": ds.x_test[:, 0], "clean": ds.y_test[:, 0],
              "teacher": load_npz(Path(teacher_run) / "predictions.npz", ("t_test",))["t_test"][:, 0]}
    for name, run in student_runs.items():
        curves[name] = load_npz(Path(run) / "predictions.npz", ("label",))["label"][:, 0]
    tr = ~ds.val
    points = pd.DataFrame({"x": ds.x_dev[tr, 0], "y": noisy.y[tr, 0], "corrupted": noisy.mask[tr]})
    return pd.DataFrame(curves).sort_values("x"), points.sort_values("x")


def average_folds(runs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Units named ``dataset.fold`` (leave-one-person-out) are averaged over folds per (noise level, seed,
    model), so the CI is over seeds of the fold-averaged error. Returns that and the per-fold table (or None)."""
    if not runs.dataset.astype(str).str.contains(".", regex=False).any():
        return runs, None
    runs = runs.copy()
    runs["fold"] = runs.dataset.str.split(".", n=1).str[1]
    runs["dataset"] = runs.dataset.str.split(".", n=1).str[0]
    keys = ["dataset", "noise_kind", "noise_level", "seed", "model"]
    numeric = [c for c in runs.columns if c not in keys + ["fold"] and pd.api.types.is_numeric_dtype(runs[c])]
    per_fold = runs.groupby(["fold", "noise_level", "model"])[numeric].mean().reset_index()
    return runs.groupby(keys)[numeric].mean().reset_index(), per_fold


def check_complete(runs: pd.DataFrame, seeds: int, sources) -> None:
    """Every (unit, model, noise level) holds exactly seeds 0 .. seeds-1: a mean over fewer seeds than the table
    claims is refused, naming what is missing."""
    problems = []
    for (unit, model, level), g in runs.groupby(["dataset", "model", "noise_level"], sort=True):
        have = sorted(int(v) for v in g.seed)
        missing = sorted(set(range(seeds)) - set(have))
        if missing or len(have) != seeds:
            problems.append(f"{unit} {model} at p = {level_tag(level)}: seeds {have}, expected 0..{seeds - 1}")
    if problems:
        raise ValueError(f"incomplete runs in {', '.join(map(str, sources))}: " + "; ".join(problems[:5]) +
                         ". Delete these runs tables and run the pipeline again (snakemake --cores all all), "
                         "which collects them from the checked model folders")


def aggregate(runs_csv, metric: str, methods: list[str], metrics_out: str, table_md: str, table_csv: str,
              error_csv: str, rejection_csv: str, error_wide_csv: str | None = None, seeds: int | None = None) -> None:
    """Every summary of one dataset from its per-run table(s); all outputs written atomically. With ``seeds``,
    a table missing any seed of any model and level is refused."""
    from kdreg.io import atomic_path, save_json
    paths = [runs_csv] if isinstance(runs_csv, str) else list(runs_csv)
    runs = pd.concat([pd.read_csv(p) for p in paths], ignore_index=True)
    missing = sorted({"dataset", "model", "noise_level", "seed", metric} - set(runs.columns))
    if missing:
        raise ValueError(f"{', '.join(map(str, paths))}: no column {', '.join(missing)}, so not a runs table that "
                         "`kdreg collect` wrote; delete it and run the pipeline again (snakemake --cores all all), "
                         "which collects it from the model folders")
    if seeds is not None:
        check_complete(runs, seeds, paths)
    runs, per_fold = average_folds(runs)
    fold_text = ""
    if per_fold is not None:  # leave-one-person-out: each fold's mean over seeds, for the teacher and key methods
        metric_ = metric
        shown = [m for m in [TEACHER, *(n for n, m in METHODS.items() if m.per_fold)] if m in set(per_fold.model)]
        sub = per_fold[per_fold.model.isin(shown)]
        wide_f = sub.pivot_table(index=["fold", "model"], columns="noise_level", values=metric_).reset_index()
        wide_f.columns = [c if isinstance(c, str) else f"p={level_tag(c)}" for c in wide_f.columns]
        fold_text = "\n\n" + markdown(wide_f.map(lambda v: f"{v:.3f}" if isinstance(v, float) else v),
                                       f"Per fold (held-out person), mean {metric_} over seeds:")
    summary = add_relative(summarize(runs), metric)
    models = [TEACHER, *[m for m in methods if m in set(runs.model)]]
    chosen = chosen_kinds(runs)
    shares = {f"p{level_tag(r.noise_level)}.{TEACHER}.chosen_{r.kind}_share": round(float(r.share), 6)
              for r in chosen.itertuples()}
    save_json(metrics_out, dict(sorted({**metrics_json(summary, metric), **shares}.items())))
    dataset = runs.dataset.iloc[0]
    n_seeds = int(runs.groupby(["noise_level", "model"]).size().max())
    title = (f"**{dataset}**: test {metric}, mean ± 95% CI over {n_seeds} seeds, "
             f"{runs.noise_kind.iloc[0]} label noise at level p")
    wide = table(summary, metric, models)
    rel = summary[(summary.metric == metric) & summary.model.isin(models)]
    rel_wide = rel.pivot(index="model", columns="noise_level", values="vs_scratch").reindex(models)
    rel_text = "\n\nError relative to `scratch` (mean / scratch's mean; < 1 is better):\n\n" + markdown(
        rel_wide.rename(columns=lambda c: f"p={level_tag(c)}").map(
            lambda v: "" if pd.isna(v) else f"{v:.3f}").reset_index(), "").lstrip()
    with atomic_path(table_md) as tmp:
        tmp.write_text(markdown(wide, title) + rel_text + chosen_kinds_markdown(chosen, summary, metric) + fold_text)
    with atomic_path(table_csv) as tmp:
        summary[summary.model.isin(models)].to_csv(tmp, index=False, float_format="%.6g")
    long = error_vs_noise(summary[summary.model.isin(models)], metric)
    with atomic_path(error_csv) as tmp:
        long.to_csv(tmp, index=False, float_format="%.6g")
    if error_wide_csv:
        with atomic_path(error_wide_csv) as tmp:
            error_vs_noise_wide(long, metric).to_csv(tmp, index=False, float_format="%.6g")
    with atomic_path(rejection_csv) as tmp:
        rejection(summary).to_csv(tmp, index=False, float_format="%.6g")
