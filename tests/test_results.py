"""The headline numbers, against values computed by hand: mean, t-based 95% CI, ratio to scratch, share of the
scratch-to-oracle gap closed, fold averaging; and the config cuts each run is keyed by."""
import math

import pandas as pd
import pytest
import yaml

from conftest import ROOT
from kdreg.config import student_config, teacher_config
from kdreg.results import add_relative, average_folds, ci95, metrics_json, summarize

T_975_2DF = 4.302652729911275  # Student's t, 97.5% quantile, 2 degrees of freedom (tables)


def runs(rows):
    return pd.DataFrame([{"dataset": d, "noise_kind": "replace", "noise_level": p, "seed": s, "model": m,
                          "rmse": v} for d, p, s, m, v in rows])


def test_mean_and_t_based_ci_by_hand():
    assert ci95(pd.Series([1.0, 2.0, 3.0]).to_numpy()) == pytest.approx(T_975_2DF * 1.0 / math.sqrt(3))
    assert math.isnan(ci95(pd.Series([1.0]).to_numpy()))
    s = summarize(runs([("sin", 0.2, seed, "kd", v) for seed, v in enumerate([1.0, 2.0, 3.0])]))
    row = s[(s.model == "kd") & (s.metric == "rmse")].iloc[0]
    assert (row.n, row["mean"], row["std"]) == (3, 2.0, 1.0)
    assert row.ci95 == pytest.approx(2.484138, abs=1e-6)


def test_ratio_to_scratch_and_gap_closed_by_hand():
    table = runs([("sin", p, s, m, v) for p in (0.0, 0.2) for s in (0, 1)
                  for m, v in (("scratch", 2.0), ("oracle", 0.5), ("tor", 1.1 + 0.1 * s), ("teacher", 1.0))])
    s = add_relative(summarize(table), "rmse").set_index(["noise_level", "model", "metric"])
    tor = s.loc[(0.2, "tor", "rmse")]
    assert tor["mean"] == pytest.approx(1.15)
    assert tor.vs_scratch == pytest.approx(1.15 / 2.0)
    assert tor.gap_closed == pytest.approx((2.0 - 1.15) / (2.0 - 0.5))  # 0.5667
    assert math.isnan(s.loc[(0.0, "tor", "rmse")].gap_closed)  # no noise, no gap to close
    assert math.isnan(s.loc[(0.2, "teacher", "rmse")].gap_closed)  # the gap is a students' measure
    assert s.loc[(0.2, "teacher", "rmse")].vs_scratch == pytest.approx(0.5)
    keys = metrics_json(add_relative(summarize(table), "rmse"), "rmse")
    assert keys["p0.2.tor.rmse_gap_closed"] == pytest.approx(0.566667, abs=1e-6)
    assert keys["p0.2.tor.rmse_vs_scratch"] == pytest.approx(0.575)
    assert keys["p0.tor.rmse_mean"] == pytest.approx(1.15)


def test_folds_are_averaged_per_seed_before_the_ci():
    table = runs([("gaze.p00", 0.2, 0, "kd", 1.0), ("gaze.p01", 0.2, 0, "kd", 3.0),
                  ("gaze.p00", 0.2, 1, "kd", 2.0), ("gaze.p01", 0.2, 1, "kd", 6.0)])
    averaged, per_fold = average_folds(table)
    assert sorted(averaged.rmse) == [2.0, 4.0] and set(averaged.dataset) == {"gaze"}
    assert per_fold.set_index("fold").rmse.to_dict() == {"p00": 1.5, "p01": 4.5}
    row = summarize(averaged).iloc[0]
    # seeds' fold means 2 and 4: std sqrt(2), so the CI is t(0.975, 1 df) * sqrt(2) / sqrt(2) = 12.7062
    assert (row["mean"], row.ci95) == (3.0, pytest.approx(12.706204736))


@pytest.fixture
def params():
    from kdreg.config import validate_params
    return validate_params(yaml.safe_load((ROOT / "params.yaml").read_text()),
                           ROOT / "workflow/schemas/params.schema.yaml")


def test_a_students_config_holds_exactly_its_methods_option_sections(params):
    assert student_config(params, "sinusoid", "tor_multitask")["loss_options"] == {
        "tor": params["loss_options"]["tor"], "multitask": params["loss_options"]["multitask"]}
    assert student_config(params, "sinusoid", "kd_mix")["loss_options"] == {"kd_mix": {"alpha": 0.5}}
    assert student_config(params, "sinusoid", "scratch")["loss_options"] == {}
    # the head setting reaches two-headed students only, so changing it retrains nothing else
    assert "predict_head" not in student_config(params, "sinusoid", "kd")
    assert student_config(params, "sinusoid", "tor_multitask")["predict_head"] == "label"


def test_a_teachers_config_reads_tor_only_when_it_refines(params):
    assert "tor" not in teacher_config(params, "sinusoid")
    params["datasets"]["sinusoid"]["teacher"]["refine_rounds"] = 1
    tor = {k: v for k, v in params["loss_options"]["tor"].items() if k != "mode"}
    assert teacher_config(params, "sinusoid")["tor"] == tor   # mode is how a student uses the mask: not a teacher's
    params["loss_options"]["tor"]["mode"] = "teacher"
    assert teacher_config(params, "sinusoid")["tor"] == tor
    assert teacher_config(params, "mpiigaze.p03") == params["datasets"]["mpiigaze"]["teacher"]
