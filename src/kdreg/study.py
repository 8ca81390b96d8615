"""Comparisons of variants (kdreg.variants): per noise level, the share of the scratch-to-oracle gap each model
closes, TOR's rejection quality, and the paired difference ``tor_multitask - tor``, each with a 95% CI over seeds.

The gap closed by model m at level p is ``(mean scratch - m) / (mean scratch - mean oracle)`` within the variant;
its CI is the CI of m's mean error scaled by the same denominator (scratch and oracle are taken as fixed). The
difference ``tor_multitask - tor`` is paired by seed (same noise, same initialization seed), so its CI is the CI
of the per-seed differences.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from kdreg.methods import BASELINE, BOUND
from kdreg.noise import level_tag
from kdreg.results import average_folds, ci95, markdown

DIFFERENCE = ("tor_multitask", "tor")  # does the second head help?
GAP_MODELS = ("teacher", "tor", "tor_multitask")  # the study tables' first columns


def _row(variant, level, model, quantity, values) -> dict:
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    return {"variant": variant, "noise_level": level, "model": model, "quantity": quantity, "n": len(values),
            "mean": values.mean() if len(values) else np.nan, "ci95": ci95(values)}


def compare(runs: dict[str, pd.DataFrame], metric: str) -> pd.DataFrame:
    """Long table: one row per (variant, noise level, model, quantity) with n, mean and ci95."""
    rows = []
    for variant, df in runs.items():
        df, _ = average_folds(df)
        for level, g in df.groupby("noise_level", sort=True):
            by_model = {m: gm.set_index("seed").sort_index() for m, gm in g.groupby("model")}
            b = by_model[BASELINE][metric].mean() if BASELINE in by_model else np.nan
            o = by_model[BOUND][metric].mean() if BOUND in by_model else np.nan
            for model, gm in by_model.items():
                rows.append(_row(variant, level, model, metric, gm[metric]))
                if level > 0 and b - o > 0:
                    rows.append(_row(variant, level, model, "gap_closed", (b - gm[metric]) / (b - o)))
                for col in ("rejection_precision", "rejection_recall", "head_is_teacher", "best_epoch", "val_error"):
                    if col in gm and gm[col].notna().any():
                        rows.append(_row(variant, level, model, col, gm[col]))
            if all(m in by_model for m in DIFFERENCE):
                a, c = (by_model[m][metric] for m in DIFFERENCE)
                rows.append(_row(variant, level, "-".join(DIFFERENCE), f"{metric}_difference", (a - c).dropna()))
    return pd.DataFrame(rows)


def _cell(hit: pd.DataFrame, fmt: str) -> str:
    if hit.empty or np.isnan(hit["mean"].iloc[0]):
        return ""
    mean, ci = hit["mean"].iloc[0], hit["ci95"].iloc[0]
    return f"{mean:{fmt}} ± {ci:{fmt}}" if not np.isnan(ci) else f"{mean:{fmt}}"


def _grid(long: pd.DataFrame, model: str, quantity: str, fmt: str, levels) -> pd.DataFrame:
    """Rows = variants (in the study's order), columns = noise levels."""
    rows = []
    for variant in long.variant.unique():
        sub = long[(long.variant == variant) & (long.model == model) & (long.quantity == quantity)]
        rows.append({"variant": variant, **{f"p={level_tag(lv)}": _cell(sub[sub.noise_level == lv], fmt)
                                            for lv in levels}})
    return pd.DataFrame(rows)


def summary_markdown(long: pd.DataFrame, metric: str, title: str) -> str:
    levels = sorted(lv for lv in long.noise_level.unique() if lv > 0)
    parts = [title] if title else []
    # (model, quantity, format, heading); "%": shown as percentages
    sections = [(m, "gap_closed", "%", f"Share of the scratch→oracle gap closed by `{m}` (%)") for m in GAP_MODELS]
    sections += [("-".join(DIFFERENCE), f"{metric}_difference", ".4f",
                  f"`tor_multitask` − `tor`, test {metric} (paired by seed; < 0: the second head helps)"),
                 ("tor", "rejection_recall", ".2f", "TOR rejection recall (share of corrupted labels rejected)"),
                 ("tor", "rejection_precision", ".2f", "TOR rejection precision (share of rejected labels corrupted)")]
    for model, quantity, fmt, heading in sections:
        if long[(long.model == model) & (long.quantity == quantity)].empty:
            continue
        data = long.assign(mean=long["mean"] * 100, ci95=long.ci95 * 100) if fmt == "%" else long
        grid = _grid(data, model, quantity, ".1f" if fmt == "%" else fmt, levels)
        parts.append(markdown(grid, f"{heading}, mean ± 95% CI over seeds:"))
    parts += [m for m in [selection_markdown(long)] if m]
    top = max(levels) if levels else None
    gaps = long[(long.quantity == "gap_closed") & (long.noise_level == top)]
    if not gaps.empty:
        wide = gaps.assign(cell=[f"{100 * v:.1f}" for v in gaps["mean"]]).pivot(
            index="variant", columns="model", values="cell").reindex(long.variant.unique()).fillna("")
        parts.append(markdown(wide.reset_index(), f"Share of the gap closed at p = {level_tag(top)}, every model (%):"))
    return "\n\n".join(parts) + "\n"


SELECT_BY = "tor_multitask"  # the study's choice: this method's validation error, every level (0 included)


def selection(long: pd.DataFrame) -> pd.DataFrame:
    """Each variant's mean validation error of ``SELECT_BY`` over every noise level, lowest first: the rule that
    picks a configuration without a test error (the validation split carries the same noise as training)."""
    val = long[(long.model == SELECT_BY) & (long.quantity == "val_error")]
    out = val.groupby("variant", sort=False)["mean"].agg(["mean", "count"]).rename(
        columns={"mean": "val_error_mean", "count": "levels"}).reset_index()
    return out.sort_values("val_error_mean", kind="stable").reset_index(drop=True).assign(rank=lambda d: d.index + 1)


def selection_markdown(long: pd.DataFrame) -> str:
    sel = selection(long)
    if sel.empty:
        return ""
    table = sel.assign(val_error_mean=[f"{v:.5f}" for v in sel.val_error_mean])
    return markdown(table, f"Selection on validation only: `{SELECT_BY}`'s validation error (noisy validation split, "
                           "median error of its chosen head), mean over every noise level; rank 1 is the choice:")


def study(runs_csvs: dict[str, str], metric: str, csv_out: str, md_out: str, title: str = "") -> pd.DataFrame:
    """Compare the variants' runs tables (``{variant: path}``, in the study's order); write the long CSV and the
    markdown summary atomically."""
    from kdreg.io import atomic_path
    long = compare({v: pd.read_csv(p) for v, p in runs_csvs.items()}, metric)
    with atomic_path(csv_out) as tmp:
        long.to_csv(tmp, index=False, float_format="%.6g")
    with atomic_path(md_out) as tmp:
        tmp.write_text(summary_markdown(long, metric, title))
    return long
