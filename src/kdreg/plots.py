"""Figures, drawn only from the small CSVs the aggregation writes: restyling never retrains."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # headless: the pipeline runs on servers and in CI
import matplotlib.ticker  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from kdreg.io import atomic_path  # noqa: E402
from kdreg.methods import BASELINE, BOUND, METHODS, TEACHER, TEACHER_COLOR  # noqa: E402

# Fixed colours per method (kdreg.methods) so every figure of every dataset reads the same way.
COLORS = {TEACHER: TEACHER_COLOR, **{name: m.color for name, m in METHODS.items()}}
EMPHASIS = {TEACHER, BASELINE, BOUND, *(name for name, m in METHODS.items() if m.in_fits)}
REFERENCES = (TEACHER, BOUND)  # dashed: what the students are measured against
METHOD_MARKERS = dict(zip([TEACHER, *METHODS], "oXsDv^<>pP*hH"))
LABELS = {"rmse": "test RMSE", "mae": "test MAE", "angular_deg": "mean angular error (°)",
          "nrmse": "test RMSE / label std, mean over labels"}


def _save(fig, path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=150, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)


def error_vs_noise(csv: str, out: str, title: str = "", log: bool | None = None) -> None:
    df = pd.read_csv(csv)
    metric = [c for c in df.columns if c not in ("model", "noise_level", "n", "ci95", "low", "high")][0]
    if log is None:  # a log axis only where the errors span a decade or more: within one it shows no tick label
        positive = df[metric][df[metric] > 0]
        log = len(positive) > 0 and positive.max() / positive.min() >= 10
    fig, ax = plt.subplots(figsize=(7, 4.5))
    # A log axis spans the teacher's clean-label error and the noisy scratch error; a band reaching below zero
    # (a wide interval over few seeds) is clipped at a third of the smallest mean, not drawn to 1e-12.
    floor = df[metric][df[metric] > 0].min() / 3 if log else None
    # Legend order = the order of the lines at the highest noise level, best first, so the legend reads like the
    # right edge of the plot.
    top = df[df.noise_level == df.noise_level.max()].set_index("model")[metric]
    order = sorted(df.model.unique(), key=lambda m: top.get(m, float("inf")))
    for i, model in enumerate(order):
        g = df[df.model == model]
        strong = model in EMPHASIS
        # every method its own marker, so lines that coincide (kd under the teacher) stay distinguishable
        ax.plot(g.noise_level, g[metric], marker=METHOD_MARKERS.get(model, "o"), ms=5 if strong else 4,
                lw=2.2 if strong else 1.0, color=COLORS.get(model), alpha=1.0 if strong else 0.75, label=model,
                ls="--" if model in REFERENCES else "-", zorder=3 if strong else 2, markerfacecolor="none"
                if not strong else None)
        if strong:  # bands for the emphasized methods only: eight overlapping bands read as one grey area
            ax.fill_between(g.noise_level, g.low.clip(lower=floor) if log else g.low, g.high,
                            color=COLORS.get(model), alpha=0.15, lw=0)
    if log:
        ax.set_yscale("log")
        ax.set_ylim(bottom=floor)
        ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("label-noise level p (share of corrupted training labels)")
    ax.set_ylabel(LABELS.get(metric, metric) + " (mean, 95% CI over seeds)")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="at the highest p, best first",
              title_fontsize=7)
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


# Studies (kdreg.study): one line per variant, in the study's order, each with a marker of its own so lines that
# coincide stay distinguishable.
MARKERS = "osD^vP*Xh<>"


def _study(csv: str) -> tuple[pd.DataFrame, list[str]]:
    df = pd.read_csv(csv)
    return df[df.noise_level > 0], list(dict.fromkeys(df.variant))


def _variant_lines(ax, df: pd.DataFrame, variants: list[str], model: str, quantity: str, scale: float = 1.0) -> None:
    sub = df[(df.model == model) & (df.quantity == quantity)]
    for i, variant in enumerate(variants):
        g = sub[sub.variant == variant].sort_values("noise_level")
        if g.empty:
            continue
        ax.errorbar(g.noise_level + 0.004 * (i - len(variants) / 2), g["mean"] * scale, yerr=g.ci95 * scale,
                    marker=MARKERS[i % len(MARKERS)], ms=5, lw=1.6, capsize=2, color=f"C{i}", label=variant)
    if sub.empty:
        ax.text(0.5, 0.5, f"no {model} in this study", ha="center", va="center", transform=ax.transAxes)


def _study_panels(csv: str, panels: list[tuple[str, str, str]], figsize, scale: float = 1.0):
    """One panel per ``(model, quantity, panel title)``, each with a line per variant; returns (fig, axes, data)."""
    df, variants = _study(csv)
    fig, axes = plt.subplots(1, len(panels), figsize=figsize, sharey=True)
    for ax, (model, quantity, panel_title) in zip(axes, panels):
        _variant_lines(ax, df, variants, model, quantity, scale)
        ax.set_title(panel_title)
        ax.set_xlabel("label-noise level p")
        ax.grid(alpha=0.3)
    return fig, axes, df


def _finish_panels(fig, axes, ylabel: str, title: str, out: str) -> None:
    axes[0].set_ylabel(ylabel)
    axes[-1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.suptitle(title)
    _save(fig, out)


def study_gap(csv: str, out: str, title: str = "") -> None:
    """Share of the scratch-to-oracle gap closed vs noise level: the teacher, tor and tor_multitask."""
    models = (TEACHER, "tor", "tor_multitask")
    fig, axes, df = _study_panels(csv, [(m, "gap_closed", m) for m in models], (13, 4.2), scale=100)
    for ax in axes:
        ax.axhline(100, color="black", lw=0.8, ls="--")  # the oracle
        ax.axhline(0, color="gray", lw=0.8, ls=":")       # scratch
    gaps = df[df.quantity == "gap_closed"]["mean"] * 100
    if not gaps.empty:  # a teacher far worse than scratch would squash the students' lines: clip the view
        axes[0].set_ylim(max(gaps.min() - 10, -100), min(max(gaps.max() + 10, 105), 150))
    _finish_panels(fig, axes, "gap closed, % (0: scratch, 100: oracle)\nmean, 95% CI over seeds", title, out)


def study_rejection(csv: str, out: str, title: str = "") -> None:
    """TOR's rejection precision and recall against the true corruption mask vs noise level."""
    panels = [("tor", f"rejection_{q}", f"tor: {q}") for q in ("precision", "recall")]
    fig, axes, _ = _study_panels(csv, panels, (10, 4))
    for ax in axes:
        ax.set_ylim(0, 1.05)
    _finish_panels(fig, axes, "mean, 95% CI over seeds", title, out)


def study_difference(csv: str, out: str, title: str = "") -> None:
    """``tor_multitask - tor`` (paired by seed) vs noise level: below zero, the second head helps."""
    df, variants = _study(csv)
    quantity = next((q for q in df.quantity.unique() if str(q).endswith("_difference")), "rmse_difference")
    fig, ax = plt.subplots(figsize=(7, 4.2))
    _variant_lines(ax, df, variants, "tor_multitask-tor", quantity)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xlabel("label-noise level p")
    ax.set_ylabel(f"tor_multitask − tor, test {quantity.removesuffix('_difference')}\n"
                  "mean, 95% CI over seeds (< 0: the second head helps)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_title(title)
    _save(fig, out)


def benchmark_summary(csv: str, out: str, title: str = "") -> None:
    """The suite across datasets (kdreg.benchmark): error relative to scratch, gap closed and mean rank vs p."""
    df = pd.read_csv(csv)
    top = df[df.noise_level == df.noise_level.max()].set_index("model")
    order = sorted(df.model.unique(), key=lambda m: (m in REFERENCES, top["rank_mean"].get(m, float("inf")),
                                                     top["relative_geomean"].get(m, float("inf"))))
    panels = [("relative_geomean", "test error / scratch's\n(geometric mean across datasets)", 1.0),
              ("gap_closed_median", "scratch→oracle gap closed, %\n(median across datasets)", 100.0),
              ("rank_mean", "rank among the students\n(mean across datasets, 1 = best)", 1.0)]
    fig, axes = plt.subplots(1, len(panels), figsize=(15, 4.4), gridspec_kw={"wspace": 0.35})
    for ax, (column, ylabel, scale) in zip(axes, panels):
        for model in order:
            g = df[(df.model == model) & df[column].notna()].sort_values("noise_level")
            if g.empty:
                continue
            strong = model in EMPHASIS
            ax.plot(g.noise_level, g[column] * scale, marker=METHOD_MARKERS.get(model, "o"), ms=5,
                    lw=2.2 if strong else 1.0, color=COLORS.get(model), label=model,
                    ls="--" if model in REFERENCES else "-", markerfacecolor=None if strong else "none")
        ax.set_xlabel("label-noise level p")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    axes[0].axhline(1.0, color="gray", lw=0.8, ls=":")
    axes[1].axhline(100, color="black", lw=0.8, ls=":")
    axes[2].invert_yaxis()  # best at the top, like the other panels' "better" direction for the gap
    handles, labels = axes[0].get_legend_handles_labels()  # the first panel has the references too
    axes[-1].legend(handles, labels, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                    title="by mean rank at the highest p", title_fontsize=7)
    fig.suptitle(title)
    _save(fig, out)


def _log_axes(ax, y_span: float) -> None:
    """Log x; log y only where the errors span a decade or more (within one, a log axis shows no tick label)."""
    ax.set_xscale("log")
    axes = [ax.xaxis]
    if y_span >= 10:
        ax.set_yscale("log")
        axes.append(ax.yaxis)
    for axis in axes:
        axis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        axis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.grid(alpha=0.3, which="both")


def frontier(csv: str, out: str, title: str = "", dataset: str | None = None) -> None:
    """One dataset's frontier (kdreg.frontier): test error against deployed parameters (log axes; the error's
    linear where it spans less than a decade), a line per method through its widths, the teacher dashed at its
    error with its parameter count; a panel per noise level, a row per noise kind."""
    df = pd.read_csv(csv)
    df = df[df.dataset == dataset] if dataset else df
    metric = next(c[:-5] for c in df.columns if c.endswith("_mean"))
    kinds, levels = sorted(df.noise_kind.unique()), sorted(df.noise_level.unique())
    fig, axes = plt.subplots(len(kinds), len(levels), figsize=(4.2 * len(levels), 3.6 * len(kinds)), squeeze=False,
                             sharex=True, gridspec_kw={"wspace": 0.3, "hspace": 0.35})
    for row, kind in zip(axes, kinds):
        for ax, level in zip(row, levels):
            g = df[(df.noise_kind == kind) & (df.noise_level == level)]
            for model in [TEACHER, *(m for m in METHODS if m in set(g.model))]:
                m = g[g.model == model].sort_values("parameters")
                if m.empty:
                    continue
                if model == TEACHER:
                    t = m.iloc[0]
                    ax.axhline(t[f"{metric}_mean"], color=COLORS[TEACHER], ls="--", lw=1.2,
                               label=f"teacher ({int(t.parameters):,} params)")
                    continue
                mean, ci = m[f"{metric}_mean"], m[f"{metric}_ci95"].fillna(0)
                # a wide interval over few seeds reaches below zero: on a log axis its bar stops at a tenth of the mean
                ax.errorbar(m.parameters, mean, yerr=[ci.clip(upper=0.9 * mean), ci], capsize=2,
                            marker=METHOD_MARKERS.get(model, "o"), ms=4, lw=1.6, color=COLORS.get(model),
                            label=model, ls="--" if model in REFERENCES else "-")
            means = g[f"{metric}_mean"]
            _log_axes(ax, means.max() / means.min())
            ax.set_title(f"{kind} noise, p = {level:g}", fontsize=9)
            ax.set_xlabel("student parameters (deployed, one head)", fontsize=8)
            ax.set_ylabel(LABELS.get(metric, metric), fontsize=8)
    axes[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.suptitle(title, y=1.0 if len(kinds) > 1 else 1.05)
    _save(fig, out)


def frontier_summary(csv: str, out: str, title: str = "") -> None:
    """Every dataset's frontier on one scale: each method's error over the best scratch student of any width
    (same dataset, noise kind and level) against the width; thin lines per dataset, thick the geometric mean."""
    import numpy as np
    df = pd.read_csv(csv)
    df = df[df.model != TEACHER]
    metric = next(c for c in df.columns if c.endswith("_mean"))
    best = df[df.model == BASELINE].groupby(["source", "noise_level"])[metric].min()
    df = df.assign(relative=df[metric].to_numpy() / best.loc[list(zip(df.source, df.noise_level))].to_numpy())
    levels = sorted(df.noise_level.unique())
    fig, axes = plt.subplots(1, len(levels), figsize=(4.6 * len(levels), 4.0), sharey=True, squeeze=False,
                             gridspec_kw={"wspace": 0.08})
    for ax, level in zip(axes[0], levels):
        g = df[df.noise_level == level]
        for model in (m for m in METHODS if m in set(g.model)):
            m = g[g.model == model]
            for _, s in m.groupby("source"):
                ax.plot(s.width, s.relative, color=COLORS.get(model), lw=0.6, alpha=0.3)
            mean = m.groupby("width").relative.apply(lambda v: float(np.exp(np.log(v).mean())))
            ax.plot(mean.index, mean.values, color=COLORS.get(model), lw=2.2, marker=METHOD_MARKERS.get(model, "o"),
                    ms=5, label=model, ls="--" if model in REFERENCES else "-")
        ax.axhline(1.0, color="gray", lw=0.8, ls=":")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.grid(alpha=0.3, which="both")
        ax.set_title(f"p = {level:g} ({g.source.nunique()} datasets x noise kinds)", fontsize=9)
        ax.set_xlabel("student width (one hidden layer)")
    axes[0][0].set_ylabel("test error / best scratch of any width\n(thick: geometric mean; thin: each dataset)")
    axes[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.suptitle(title)
    _save(fig, out)


def examples(data_npz: str, noisy_npz: str, out: str, title: str = "", n: int = 16) -> None:
    """Training images of an image dataset with their clean and noisy labels: the first ``n // 2`` corrupted and
    as many clean ones of one noisy set (reads the dataset and noisy-label files; a few images, no training)."""
    import numpy as np

    from kdreg.io import load_npz
    # the arrays themselves (the figure needs no model or dataset code: editing that redraws nothing)
    ds, noisy = load_npz(data_npz, ("x_dev", "y_dev")), load_npz(noisy_npz, ("y", "mask"))
    images, clean_y, noisy_y, mask = ds["x_dev"], ds["y_dev"], noisy["y"], noisy["mask"].astype(bool)
    if images.ndim != 3 or noisy_y.shape != clean_y.shape or mask.shape != (len(clean_y),):
        raise ValueError(f"{data_npz} holds no images, or {noisy_npz} is not its noisy labels")
    corrupted, clean = np.flatnonzero(mask), np.flatnonzero(~mask)
    rows = list(corrupted[: n // 2]) + list(clean[: n - min(len(corrupted), n // 2)])
    cols = min(8, len(rows))
    fig, axes = plt.subplots((len(rows) + cols - 1) // cols, cols, figsize=(1.5 * cols, 1.75 * ((len(rows) + cols - 1)
                                                                                               // cols)), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, rows):
        ax.imshow(images[i], cmap="gray", vmin=0, vmax=255)
        label = ", ".join(f"{v:.2g}" for v in clean_y[i])
        if mask[i]:
            ax.set_title(f"{label}\n→ {', '.join(f'{v:.2g}' for v in noisy_y[i])}", fontsize=7, color="#c0392b")
        else:
            ax.set_title(label, fontsize=7)
    # room between rows for the two-line labels, and above them for the title
    fig.subplots_adjust(hspace=0.55, top=0.8)
    fig.suptitle(f"{title}\nclean label (black); corrupted: clean → noisy (red)", fontsize=9, y=1.0)
    _save(fig, out)
