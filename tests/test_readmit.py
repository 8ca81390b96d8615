"""The refinement guard (teacher.refine_readmit): a region rejected whole comes back, scattered rejections stay."""
import copy

import numpy as np
import pytest

from conftest import sinusoid_group
from kdreg.config import check_params
from kdreg.refine import readmit_rejected_regions
from kdreg.teacher import train_teacher, train_teachers

TEACHER = {"model": {"hidden": [16]}, "train": {"epochs": 60, "lr": 0.01, "eval_every": 10}, "loss": "mse"}


def test_a_region_rejected_whole_comes_back_and_scattered_rejections_stay():
    x = np.linspace(-3, 3, 300)[:, None]
    keep = np.ones(300, dtype=bool)
    keep[100:150] = False                      # a stretch the teacher did not fit
    scattered = np.arange(0, 300, 3)
    scattered = scattered[(scattered < 95) | (scattered > 155)]
    keep[scattered] = False                    # label noise: one row in three, at random places
    out = readmit_rejected_regions(x, keep, neighbours=10, share=0.9)
    assert out[105:145].all()                  # the stretch's inside is back (its edges see kept rows)
    assert not out[scattered].any()            # no scattered rejection is undone
    assert (out >= keep).all()                 # nothing kept is dropped


def test_random_rejection_at_high_noise_is_left_alone():
    """At a corrupted share of 0.4 scattered at random, the committed setting (20 neighbours, 0.9) re-admits
    next to nothing: the guard does not undo TOR where the noise is what it rejects."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4000, 3))
    keep = rng.random(4000) > 0.4
    out = readmit_rejected_regions(x, keep, neighbours=20, share=0.9)
    assert (out & ~keep).sum() <= 2
    assert (readmit_rejected_regions(x, keep, neighbours=20, share=0.3) & ~keep).sum() > 100  # it can act


def test_images_are_refused_with_the_key():
    with pytest.raises(ValueError, match="refine_readmit"):
        readmit_rejected_regions(np.zeros((10, 1, 4, 4)), np.zeros(10, dtype=bool), 3, 0.5)


def test_the_guard_in_a_refined_teacher_stacked_equals_alone_and_is_recorded():
    ds, noisies, seeds = sinusoid_group([(0.2, 0), (0.4, 1)])
    cfg = {**TEACHER, "refine_rounds": 1, "tor": {"k": 1.0}, "refine_readmit": {"neighbours": 4, "share": 0.5}}
    stacked = train_teachers(ds, noisies, cfg, seeds, "cpu")
    plain = train_teachers(ds, noisies, {k: v for k, v in cfg.items() if k != "refine_readmit"}, seeds, "cpu")
    readmitted = []
    for res, bare, noisy, seed in zip(stacked, plain, noisies, seeds):
        alone = train_teacher(ds, noisy, cfg, seed, "cpu")
        assert res.metrics["refine"] == alone.metrics["refine"]
        np.testing.assert_allclose(res.t_dev, alone.t_dev, rtol=1e-4, atol=1e-5)
        (record,) = res.metrics["refine"]
        (bare_record,) = bare.metrics["refine"]
        assert "readmitted_fraction" not in bare_record
        assert record["kept_fraction"] == pytest.approx(bare_record["kept_fraction"] + record["readmitted_fraction"])
        readmitted.append(record["readmitted_fraction"])
    assert max(readmitted) > 0                 # the setting above does re-admit rows: the refit changed


def test_params_check_refuses_the_guard_where_it_cannot_act(committed_params):
    params = copy.deepcopy(committed_params)
    params["datasets"]["sinusoid"]["teacher"]["refine_readmit"] = {"neighbours": 20, "share": 0.9}
    with pytest.raises(ValueError, match="datasets.sinusoid.teacher.refine_readmit: it acts on refinement rounds"):
        check_params(params)
    params["datasets"]["sinusoid"]["teacher"]["refine_rounds"] = 1
    check_params(params)
    params["datasets"]["digits"]["teacher"].update(refine_rounds=1, refine_readmit={"neighbours": 20, "share": 0.9})
    with pytest.raises(ValueError, match="datasets.digits.teacher.refine_readmit: .* images"):
        check_params(params)
