"""The small-model frontier: test error against student size, per method, at teachers the pipeline already trains.

A *source* is a results name (``sinusoid-recommended``, ``boston-benchmark_replace``; chosen by
:func:`kdreg.variants.frontier_sources`): its data, noise, teachers and student settings. For each source, students with one hidden layer of every width in ``frontier.widths`` are
trained for the chosen (noise level, seed) members, reading that source's teacher predictions: nothing but
students is trained. From their runs come

- the frontier table, one row per (source, noise level, method, width): the deployed parameter count and the
  test error's mean and 95% CI over seeds, and the ratio to ``scratch`` at the same width; the teacher has rows
  of its own (width empty);
- the equal-accuracy table, per (source, level): the best ``scratch`` student of any width, the smallest
  distilled student whose mean error is at most that one's, and the ratio of their parameter counts;
- a flat summary for ``dvc metrics diff``.

Parameters are counted as deployed: a two-headed student ships one head (its headline uses one, picked per model
by ``predict_head``), so it counts as the one-headed network of its width.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from kdreg.io import atomic_path
from kdreg.manifest import verify_group
from kdreg.methods import BASELINE, METHODS, TEACHER
from kdreg.noise import level_tag
from kdreg.results import ci95, collect

DISTILLED = "tor_multitask"  # the equal-accuracy table's distilled student (kdreg's recommended configuration)


def teacher_runs(teacher_dirs: dict[str, list[str]], wanted: list[tuple[float, int]]) -> pd.DataFrame:
    """Each source's teacher runs of the frontier's members, with the teacher's parameter count."""
    keep = {(level_tag(lvl), s) for lvl, s in wanted}
    frames = []
    for source, dirs in teacher_dirs.items():
        runs = [r for d in dirs for r in verify_group(d)]
        df = collect(runs)
        df = df[[(level_tag(lvl), int(s)) in keep for lvl, s in zip(df.noise_level, df.seed)]].copy()
        # each run's own count: under teacher.kind auto the models of one group chose different kinds
        size = {}
        for run in runs:
            m = json.loads((run / "metrics.json").read_text())
            size[level_tag(m["noise_level"]), int(m["seed"])] = int(
                yaml.safe_load((run / "config.yaml").read_text())["resolved"]["parameters"])
        df["parameters"] = [size[level_tag(lvl), int(s)] for lvl, s in zip(df.noise_level, df.seed)]
        df["width"], df["source"] = np.nan, source
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def student_runs(student_dirs: dict[str, list[str]]) -> pd.DataFrame:
    """Every frontier student run of each source (its metrics hold ``width`` and the deployed ``parameters``)."""
    frames = []
    for source, dirs in student_dirs.items():
        df = collect([r for d in dirs for r in verify_group(d)])
        df["source"] = source
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def table(runs: pd.DataFrame, metric: str = "rmse") -> pd.DataFrame:
    """One row per (source, noise level, method, width): parameters (a teacher's: the median over its seeds), n,
    mean and 95% CI of ``metric``, and ``vs_scratch``, the mean over scratch's at the same width and level (the
    teacher: over the best scratch)."""
    keys = ["source", "dataset", "noise_kind", "noise_level", "model", "width"]
    rows = []
    for key, g in runs.groupby(keys, sort=False, dropna=False):
        v = g[metric].to_numpy(dtype=float)
        # a student's count is its width's; a teacher's may differ by seed (kind auto): the median
        rows.append({**dict(zip(keys, key)), "parameters": int(round(np.median(g.parameters))), "n": len(v),
                     f"{metric}_mean": v.mean(), f"{metric}_ci95": ci95(v)})
    out = pd.DataFrame(rows)
    mean = f"{metric}_mean"
    scratch = out[out.model == BASELINE].set_index(["source", "noise_level", "width"])[mean]
    best = scratch.groupby(level=[0, 1]).min()
    out["vs_scratch"] = [m / (best[s, lvl] if model == TEACHER else scratch[s, lvl, w])
                         for s, lvl, w, model, m in zip(out.source, out.noise_level, out.width, out.model, out[mean])]
    # the teacher first, then methods in the package's order, narrow to wide
    order = {m: i for i, m in enumerate([TEACHER, *METHODS])}
    out = out.assign(_m=out.model.map(order), _w=out.width.fillna(-1))
    out = out.sort_values(["source", "noise_level", "_m", "_w"], kind="stable").drop(columns=["_m", "_w"])
    return out.reset_index(drop=True)


def equal_accuracy(frontier: pd.DataFrame, metric: str = "rmse", distilled: str = DISTILLED) -> pd.DataFrame:
    """Per (source, level): the best scratch student of any width; the smallest ``distilled`` student whose mean
    error is at most that one's; ``param_ratio`` = scratch's parameters / the distilled student's. Where even the
    narrowest distilled student beats every scratch width (``beats_every_scratch``), scratch reaches its accuracy at
    no width measured: the equal-accuracy ratio is unbounded (shown as ∞), ``param_ratio`` a lower bound. No
    distilled width matching: the columns of the distilled student are empty."""
    mean = f"{metric}_mean"
    rows = []
    for (source, level), g in frontier.groupby(["source", "noise_level"], sort=False):
        sc = g[g.model == BASELINE].sort_values("width")
        ds = g[g.model == distilled].sort_values("width")
        best = sc.loc[sc[mean].idxmin()]
        match = ds[ds[mean] <= best[mean]]
        row = {"source": source, "dataset": best.dataset, "noise_kind": best.noise_kind, "noise_level": level,
               "scratch_width": int(best.width), "scratch_parameters": int(best.parameters),
               f"scratch_{metric}": best[mean], "distilled": distilled}
        if match.empty:
            row.update({"distilled_width": np.nan, "distilled_parameters": np.nan, f"distilled_{metric}": np.nan,
                        "param_ratio": np.nan, "beats_every_scratch": False})
        else:
            m = match.iloc[0]
            row.update({"distilled_width": int(m.width), "distilled_parameters": int(m.parameters),
                        f"distilled_{metric}": m[mean], "param_ratio": best.parameters / m.parameters,
                        "beats_every_scratch": bool(m.width == ds.width.min() and m[mean] < sc[mean].min())})
        rows.append(row)
    return pd.DataFrame(rows)


def _ratio_text(r) -> str:
    if pd.isna(r.param_ratio):
        return "none matches"
    return f"∞ (≥ {r.param_ratio:.3g})" if r.beats_every_scratch else f"{r.param_ratio:.3g}"


def equal_accuracy_markdown(eq: pd.DataFrame, metric: str = "rmse") -> str:
    lines = [f"| dataset | noise | p | best scratch: width, params, {metric.upper()} | smallest {DISTILLED} matching it:"
             f" width, params, {metric.upper()} | parameter ratio |", "|---|---|---|---|---|---|"]
    for r in eq.itertuples():
        d = getattr(r, f"distilled_{metric}")
        dist = ("none" if pd.isna(r.distilled_width) else
                f"{int(r.distilled_width)}, {int(r.distilled_parameters):,}, {d:.4g}")
        lines.append(f"| {r.dataset} | {r.noise_kind} | {r.noise_level:g} | {r.scratch_width}, {r.scratch_parameters:,}, "
                     f"{getattr(r, f'scratch_{metric}'):.4g} | {dist} | {_ratio_text(r)} |")
    return "\n".join(lines) + "\n"


def summary(frontier: pd.DataFrame, eq: pd.DataFrame, metric: str = "rmse", distilled: str = DISTILLED,
            target_ratio: float = 10.0) -> dict:
    """Flat keys for ``dvc metrics diff``: per source and level the equal-accuracy figures; per noise kind and
    level how many datasets reach ``target_ratio``; per level the distilled student's worst ratio to scratch at
    the same width."""
    out: dict[str, float] = {}
    for r in eq.itertuples():
        key = f"{r.source}.p{level_tag(r.noise_level)}"
        out[f"{key}.best_scratch_{metric}"] = float(getattr(r, f"scratch_{metric}"))
        out[f"{key}.best_scratch_width"] = int(r.scratch_width)
        if not pd.isna(r.param_ratio):
            out[f"{key}.{distilled}_width"] = int(r.distilled_width)
            out[f"{key}.{distilled}_{metric}"] = float(getattr(r, f"distilled_{metric}"))
            out[f"{key}.param_ratio"] = float(r.param_ratio)
        out[f"{key}.beats_every_scratch"] = int(r.beats_every_scratch)
    for (kind, level), g in eq.groupby(["noise_kind", "noise_level"]):
        reached = (g.param_ratio >= target_ratio) | g.beats_every_scratch
        out[f"{kind}.p{level_tag(level)}.datasets"] = int(len(g))
        out[f"{kind}.p{level_tag(level)}.datasets_ratio_{target_ratio:g}x"] = int(reached.sum())
    d = frontier[frontier.model == distilled]
    for level, g in d.groupby("noise_level"):
        out[f"p{level_tag(level)}.{distilled}_vs_scratch_same_width_max"] = float(g.vs_scratch.max())
        out[f"p{level_tag(level)}.{distilled}_vs_scratch_same_width_median"] = float(g.vs_scratch.median())
    return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in out.items()}


RUN_COLUMNS = ["source", "dataset", "noise_kind", "noise_level", "seed", "model", "width", "parameters"]
_TEXT = ("source", "dataset", "noise_kind", "model")


def runs_table(student_dirs: dict[str, list[str]], teacher_dirs: dict[str, list[str]],
               wanted: list[tuple[float, int]], metric: str) -> pd.DataFrame:
    """One row per frontier run (each source's teachers of the members and every frontier student): the columns the
    tables are made of (:data:`RUN_COLUMNS` and ``metric``)."""
    runs = pd.concat([teacher_runs(teacher_dirs, wanted), student_runs(student_dirs)], ignore_index=True)
    if metric not in runs.columns:
        raise ValueError(f"--metric {metric!r}: the frontier's runs have no such metric "
                         f"(they have {sorted(c for c in runs.columns if c not in RUN_COLUMNS)})")
    return runs[RUN_COLUMNS + [metric]]


def write_runs(runs: pd.DataFrame, path: str) -> pd.DataFrame:
    """Write the runs table (6 significant digits, like every runs table) and return it as read back: the tables
    are derived from exactly what the file holds, so they can be derived again from it alone (the results gate)."""
    with atomic_path(path) as tmp:
        runs.to_csv(tmp, index=False, float_format="%.6g")
    return read_runs(path)


def read_runs(path: str) -> pd.DataFrame:
    """A runs table written by :func:`write_runs`; names stay text (a dataset called ``NA`` is not a missing
    value), only an empty width (a teacher's) is missing."""
    try:
        runs = pd.read_csv(path, dtype={c: str for c in _TEXT}, keep_default_na=False, na_values={"width": [""]})
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not a frontier runs table ({e}); make it with `kdreg frontier-table --runs-copy`")
    missing = [c for c in RUN_COLUMNS if c not in runs.columns]
    if missing or len(runs.columns) != len(RUN_COLUMNS) + 1:
        raise ValueError(f"{path}: not a frontier runs table: expected the columns {RUN_COLUMNS} and one metric, "
                         f"found {list(runs.columns)}; make it with `kdreg frontier-table --runs-copy`")
    return runs


def write(runs: pd.DataFrame, metric: str, csv: str, equal_csv: str, equal_md: str, metrics: str) -> None:
    """From the frontier's runs (:func:`runs_table`): write the frontier table, the equal-accuracy table (CSV and
    Markdown) and the summary JSON."""
    if metric not in runs.columns:
        raise ValueError(f"--metric {metric!r}: the runs table has no such column (it has {list(runs.columns)})")
    front = table(runs, metric)
    eq = equal_accuracy(front, metric)
    for df, path in ((front, csv), (eq, equal_csv)):
        with atomic_path(path) as tmp:
            df.to_csv(tmp, index=False, float_format="%.6g")
    with atomic_path(equal_md) as tmp:
        Path(tmp).write_text(equal_accuracy_markdown(eq, metric))
    with atomic_path(metrics) as tmp:
        Path(tmp).write_text(json.dumps(summary(front, eq, metric), indent=1, sort_keys=True) + "\n")
