"""Figures, drawn only from the small CSVs the aggregation writes: restyling never retrains."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # headless: the pipeline runs on servers and in CI
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from kdreg.io import atomic_path  # noqa: E402
from kdreg.methods import BASELINE, BOUND, METHODS, TEACHER, TEACHER_COLOR  # noqa: E402

# Fixed colours per method (kdreg.methods) so every figure of every dataset reads the same way.
COLORS = {TEACHER: TEACHER_COLOR, **{name: m.color for name, m in METHODS.items()}}
EMPHASIS = {TEACHER, BASELINE, BOUND, *(name for name, m in METHODS.items() if m.in_fits)}
REFERENCES = (TEACHER, BOUND)  # dashed: what the students are measured against
LABELS = {"rmse": "test RMSE", "mae": "test MAE", "angular_deg": "mean angular error (°)"}


def _save(fig, path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=150, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)


def error_vs_noise(csv: str, out: str, title: str = "", log: bool = True) -> None:
    df = pd.read_csv(csv)
    metric = [c for c in df.columns if c not in ("model", "noise_level", "n", "ci95", "low", "high")][0]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    # A log axis spans the teacher's clean-label error and the noisy scratch error; a band reaching below zero
    # (a wide interval over few seeds) is clipped at a third of the smallest mean, not drawn to 1e-12.
    floor = df[metric][df[metric] > 0].min() / 3 if log else None
    for model, g in df.groupby("model", sort=False):
        strong = model in EMPHASIS
        ax.plot(g.noise_level, g[metric], marker="o", ms=4 if strong else 3, lw=2.2 if strong else 1.0,
                color=COLORS.get(model), alpha=1.0 if strong else 0.7, label=model,
                ls="--" if model in REFERENCES else "-")
        ax.fill_between(g.noise_level, g.low.clip(lower=floor) if log else g.low, g.high,
                        color=COLORS.get(model), alpha=0.15 if strong else 0.06, lw=0)
    if log:
        ax.set_yscale("log")
        ax.set_ylim(bottom=floor)
    ax.set_xlabel("label-noise level p (share of corrupted training labels)")
    ax.set_ylabel(LABELS.get(metric, metric) + " (mean, 95% CI over seeds)")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    _save(fig, out)


def fits(curves_csv: str, points_csv: str, out: str, title: str = "") -> None:
    curves, points = pd.read_csv(curves_csv), pd.read_csv(points_csv)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    clean, bad = points[~points.corrupted], points[points.corrupted]
    ax.scatter(clean.x, clean.y, s=5, color="tab:gray", alpha=0.5, label="training labels (clean)")
    ax.scatter(bad.x, bad.y, s=7, color="tab:red", marker="x", alpha=0.6, label="training labels (corrupted)")
    ax.plot(curves.x, curves.clean, color="black", lw=1, ls=":", label="sin(x)")
    for name in [c for c in curves.columns if c not in ("x", "clean")]:
        ax.plot(curves.x, curves[name], lw=2, color=COLORS.get(name), label=name)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title(title)
    ax.legend(fontsize=7, loc="lower right")
    _save(fig, out)


def rejection(csv: str, out: str, title: str = "") -> None:
    # Precision and recall are about corrupted samples, so p = 0 (none) is left out.
    df = pd.read_csv(csv)
    df = df[df.noise_level > 0]
    fig, ax = plt.subplots(figsize=(6, 4))
    # tor and tor_multitask reject with the same mask (same teacher, same threshold): draw each distinct series
    # once and name every method it belongs to.
    series: dict[tuple, list[str]] = {}
    for model, g in df.groupby("model", sort=True):
        key = tuple(g.sort_values(["metric", "noise_level"])["mean"].round(9))
        series.setdefault(key, []).append(model)
    for models in series.values():
        for metric, g in df[df.model == models[0]].groupby("metric"):
            ax.errorbar(g.noise_level, g["mean"], yerr=g.ci95, marker="o" if metric.endswith("precision") else "s",
                        ls="-" if metric.endswith("precision") else "--", color=COLORS.get(models[-1]), capsize=3,
                        label=f"{' = '.join(models)}: {metric.removeprefix('rejection_')}")
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("label-noise level p")
    ax.set_ylabel("TOR rejection vs the true corruption mask")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, out)
