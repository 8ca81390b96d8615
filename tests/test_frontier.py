"""The small-model frontier: its tables computed by hand, its students as the same students trained alone, and the
params it refuses."""
import json

import numpy as np
import pandas as pd
import pytest
import torch

from kdreg import frontier, variants
from kdreg.config import width_config
from kdreg.models import mlp_parameters
from kdreg.results import ci95


def runs(rows):
    """A runs table (one row per seed) from ``(source, level, model, width, parameters, [rmse per seed])``."""
    out = []
    for source, level, model, width, params, values in rows:
        for seed, v in enumerate(values):
            out.append({"source": source, "dataset": source.split("-")[0], "noise_kind": "replace",
                        "noise_level": level, "seed": seed, "model": model, "width": width, "parameters": params,
                        "rmse": v})
    return pd.DataFrame(out)


P = {2: 7, 4: 13, 8: 25}  # one input, one output: (1 + 1) * w + (w + 1)


def case(source, scratch, distilled):
    """One source at p = 0.4: scratch and tor_multitask means per width (two seeds each, +-0.01 around them)."""
    rows = [(source, 0.4, "teacher", np.nan, 33409, [0.05, 0.05])]
    rows += [(source, 0.4, "scratch", w, P[w], [m - 0.01, m + 0.01]) for w, m in zip(P, scratch)]
    rows += [(source, 0.4, "tor_multitask", w, P[w], [m - 0.01, m + 0.01]) for w, m in zip(P, distilled)]
    return rows


def test_table_means_cis_and_ratio_to_scratch_at_the_same_width():
    t = frontier.table(runs(case("a-x", [0.5, 0.4, 0.45], [0.2, 0.1, 0.3])))
    row = t[(t.model == "tor_multitask") & (t.width == 4)].iloc[0]
    assert row.rmse_mean == pytest.approx(0.1) and row.parameters == 13 and row.n == 2
    assert row.rmse_ci95 == pytest.approx(ci95(np.array([0.09, 0.11])))
    assert row.vs_scratch == pytest.approx(0.1 / 0.4)
    teacher = t[t.model == "teacher"].iloc[0]
    assert np.isnan(teacher.width) and teacher.vs_scratch == pytest.approx(0.05 / 0.4)  # over the best scratch
    assert list(t.model[:2]) == ["teacher", "scratch"]  # the teacher first, then methods narrow to wide


def test_a_teachers_parameters_are_the_median_over_seeds_whose_kinds_differ():
    students = runs(case("a-x", [0.5, 0.4, 0.45], [0.2, 0.1, 0.3]))
    teachers = runs([("a-x", 0.4, "teacher", np.nan, 0, [0.1, 0.2, 0.3])])
    teachers["parameters"] = [33_409, 5_000, 900]  # kind auto: a network, two tree ensembles
    t = frontier.table(pd.concat([students[students.model != "teacher"], teachers], ignore_index=True))
    assert t[t.model == "teacher"].parameters.tolist() == [5_000]


def test_equal_accuracy_smallest_match_its_ratio_and_the_unbounded_case():
    table = frontier.table(runs(case("beats-x", [0.5, 0.4, 0.45], [0.2, 0.1, 0.3])
                                + case("match-x", [0.5, 0.3, 0.2], [0.4, 0.19, 0.1])
                                + case("none-x", [0.5, 0.3, 0.2], [0.6, 0.5, 0.25])))
    eq = frontier.equal_accuracy(table).set_index("source")
    # narrowest distilled (0.2) already beats the best scratch (width 4, 0.4): unbounded, 13/7 a lower bound
    assert eq.loc["beats-x", "scratch_width"] == 4 and eq.loc["beats-x", "distilled_width"] == 2
    assert eq.loc["beats-x", "beats_every_scratch"] and eq.loc["beats-x", "param_ratio"] == pytest.approx(13 / 7)
    # best scratch is the widest (0.2); the first distilled at or below it is width 4 (0.19)
    assert eq.loc["match-x", "distilled_width"] == 4 and not eq.loc["match-x", "beats_every_scratch"]
    assert eq.loc["match-x", "param_ratio"] == pytest.approx(25 / 13)
    assert np.isnan(eq.loc["none-x", "param_ratio"]) and not eq.loc["none-x", "beats_every_scratch"]
    md = frontier.equal_accuracy_markdown(eq.reset_index())
    assert "∞ (≥ 1.86)" in md and "none matches" in md
    summary = frontier.summary(table, eq.reset_index(), target_ratio=1.5)
    assert summary["replace.p0.4.datasets"] == 3 and summary["replace.p0.4.datasets_ratio_1.5x"] == 2
    assert "none-x.p0.4.param_ratio" not in summary and summary["beats-x.p0.4.beats_every_scratch"] == 1
    assert summary["p0.4.tor_multitask_vs_scratch_same_width_max"] == pytest.approx(0.5 / 0.3)  # none-x, width 4


def test_frontier_sources_are_the_listed_variants_mlp_names_that_run_its_members(committed_params):
    p = {**committed_params, "frontier": {"enabled": True, "variants": ["recommended"], "levels": [0.0, 0.4],
                                          "seeds": 5}}
    names = {"sinusoid": ("sinusoid", p), "sinusoid-recommended": ("sinusoid", p),
             "mpiigaze-recommended": ("mpiigaze", p)}
    # not listed: the default's name; CNN students: left out of the frontier
    assert variants.frontier_sources(p, names) == ["sinusoid-recommended"]
    assert variants.frontier_members(p["frontier"]) == [(0.0, s) for s in range(5)] + [(0.4, s) for s in range(5)]
    short = {**p, "seeds": 3, "noise": {**p["noise"], "levels": [0.0, 0.5]}}
    with pytest.raises(ValueError, match=r"frontier: sinusoid-recommended has noise levels \['0', '0.5'\] and 3 seeds"):
        variants.frontier_sources(p, {"sinusoid-recommended": ("sinusoid", short)})
    with pytest.raises(ValueError, match="seeds"):
        variants.frontier_sources(p, {"sinusoid-recommended": ("sinusoid", {**p, "seeds": 4})})
    assert variants.frontier_sources({**p, "frontier": {**p["frontier"], "enabled": False}}, names) == []


STUDENT = {"model": {"hidden": [4], "activation": "tanh"}, "train": {"epochs": 40, "lr": 0.02},
           "loss_options": {"tor": {"threshold": "mad", "k": 3}}, "predict_head": "auto"}


def test_frontier_students_are_the_students_of_that_width_and_count_one_head(tmp_path):
    """A frontier job's runs equal the students trained at that width by the pipeline's student path, and a
    two-headed student's parameters are its one-headed network's; then the table and both figures are made."""
    from kdreg.data import make_sinusoid
    from kdreg.jobs import run_frontier, run_teachers
    from kdreg.layout import member_name
    from kdreg.noise import NoisyLabels
    from kdreg.plots import frontier as plot_frontier, frontier_summary
    from kdreg.train import train_method_students
    torch.set_num_threads(1)
    ds = make_sinusoid(n_train=150, n_test=50, seed=0)
    ds.save(tmp_path / "clean.npz")
    members = [(0.0, 0), (0.3, 0), (0.3, 1)]
    (tmp_path / "noisy").mkdir()
    noisies = [NoisyLabels.make(ds.y_dev, "replace", lvl, s) for lvl, s in members]
    for (lvl, s), n in zip(members, noisies):
        n.save(tmp_path / "noisy" / f"{member_name(lvl, s)}.npz")
    teacher = {"model": {"hidden": [16]}, "train": {"epochs": 40, "lr": 0.01, "eval_every": 10}, "loss": "mse"}
    run_teachers(str(tmp_path / "clean.npz"), str(tmp_path / "noisy"), members, teacher, str(tmp_path / "t"), "cpu")
    configs = {"scratch": STUDENT, "tor_multitask": STUDENT}
    out = tmp_path / "frontier"
    run_frontier(str(tmp_path / "clean.npz"), str(tmp_path / "noisy"), members, configs, [2, 8], str(tmp_path / "t"),
                 str(out), "cpu")
    t_devs = [np.load(tmp_path / "t" / member_name(lvl, s) / "predictions.npz")["t_dev"]
              for lvl, s in members]
    alone = train_method_students(ds, noisies, t_devs, {m: width_config(c, 8) for m, c in configs.items()},
                                  [s for _, s in members], "cpu")
    for method in configs:
        for (lvl, s), res in zip(members, alone[method]):
            saved = json.loads((out / "w8" / method / member_name(lvl, s) / "metrics.json").read_text())
            assert saved["rmse"] == res.metrics["rmse"] and saved["width"] == 8
            assert saved["parameters"] == mlp_parameters(1, [8], 1) == 25
    assert (out / "SHA256SUMS").exists() and not (tmp_path / "frontier.resume").exists()

    paths = {k: str(tmp_path / f"{k}.out") for k in ("csv", "equal_csv", "equal_md", "metrics")}
    made = frontier.runs_table({"sinusoid-x": [str(out)]}, {"sinusoid-x": [str(tmp_path / "t")]}, members, "rmse")
    assert len(made) == len(members) * (1 + 2 * 2)  # the teacher, two methods at two widths
    frontier.write(frontier.write_runs(made, str(tmp_path / "runs.csv")), "rmse", **paths)
    table = pd.read_csv(paths["csv"])
    assert set(table.model) == {"teacher", "scratch", "tor_multitask"} and set(table.noise_level) == {0.0, 0.3}
    assert table[table.model == "teacher"].parameters.iloc[0] == mlp_parameters(1, [16], 1)
    assert len(pd.read_csv(paths["equal_csv"])) == 2 and "sinusoid-x.p0.3.best_scratch_rmse" in json.loads(
        open(paths["metrics"]).read())
    for draw, png in ((lambda p: plot_frontier(paths["csv"], out=p, dataset="sinusoid"), "one.png"),
                      (lambda p: frontier_summary(paths["csv"], out=p), "summary.png")):
        draw(str(tmp_path / png))
        assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG"


def test_the_tables_derive_again_from_the_runs_table_alone(tmp_path):
    """What the results gate relies on: `frontier-table --runs` on the committed runs table writes the very bytes
    the pipeline wrote from the groups; names that look like missing values stay names."""
    import os
    import subprocess
    import sys
    from pathlib import Path
    rng = np.random.default_rng(0)
    rows = []
    for source in ("NA-benchmark_replace", "null-recommended"):
        for level in (0.0, 0.2):
            rows.append((source, level, "teacher", np.nan, 33153, rng.random(5) + 1))
            for w in (2, 4, 8):
                for model in ("scratch", "tor_multitask"):
                    rows.append((source, level, model, w, P[w], rng.random(5) / 3 + 1 + 1 / w))
    made = runs(rows)
    made["dataset"] = made.source.str.split("-").str[0]
    made = made[frontier.RUN_COLUMNS + ["rmse"]]
    first = {k: str(tmp_path / f"a_{k}") for k in ("csv", "equal_csv", "equal_md", "metrics")}
    back = frontier.write_runs(made, str(tmp_path / "runs.csv"))
    # names that read as missing values stay names; only the teachers' widths (2 sources x 2 levels x 5 seeds) are
    assert list(back.dataset.unique()) == ["NA", "null"] and back.width.isna().sum() == 2 * 2 * 5
    frontier.write(back, "rmse", **first)
    again = {k: str(tmp_path / f"b_{k}") for k in first}
    argv = ["frontier-table", "--runs", str(tmp_path / "runs.csv"), "--csv", again["csv"], "--equal-csv",
            again["equal_csv"], "--equal-md", again["equal_md"], "--metrics", again["metrics"]]
    src = str(Path(__file__).resolve().parents[1] / "src")
    subprocess.run([sys.executable, "-m", "kdreg", *argv], check=True, env={**os.environ, "PYTHONPATH": src})
    for k in first:
        assert Path(again[k]).read_bytes() == Path(first[k]).read_bytes(), k
    assert "NA-benchmark_replace.p0.2.best_scratch_rmse" in json.loads(Path(first["metrics"]).read_text())
    edited = pd.read_csv(tmp_path / "runs.csv", keep_default_na=False)
    edited.to_csv(tmp_path / "bad.csv", index=False, columns=[c for c in edited.columns if c != "parameters"])
    with pytest.raises(ValueError, match="not a frontier runs table"):
        frontier.read_runs(str(tmp_path / "bad.csv"))
