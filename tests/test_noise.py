import numpy as np
import pytest

from kdreg.data import make_sinusoid
from kdreg.noise import NoisyLabels, corrupt


@pytest.fixture
def labels():
    return np.random.default_rng(0).normal(size=(1000, 2)).astype(np.float32)


@pytest.mark.parametrize("level", [0.0, 0.1, 0.25, 0.4, 1.0])
def test_replace_corrupts_exactly_round_pN(labels, level):
    noisy, mask = corrupt(labels, "replace", level, seed=3)
    assert mask.sum() == round(level * len(labels))
    assert np.array_equal(noisy[~mask], labels[~mask])
    assert not np.any(np.all(noisy[mask] == labels[mask], axis=1))


def test_replace_draws_within_the_widened_range(labels):
    noisy, mask = corrupt(labels, "replace", 0.5, seed=0, spread=0.5)
    lo, hi = labels.min(0), labels.max(0)
    width = hi - lo
    assert np.all(noisy[mask] >= lo - 0.5 * width) and np.all(noisy[mask] <= hi + 0.5 * width)
    # with spread 0.5 a third of the drawn range lies outside the clean range: some replacements land there
    assert np.any((noisy[mask] < lo) | (noisy[mask] > hi))


@pytest.mark.parametrize("level", [0.0, 0.1, 0.25, 0.4, 1.0])
def test_resample_corrupts_exactly_round_pN_with_labels_the_data_holds(labels, level):
    noisy, mask = corrupt(labels, "resample", level, seed=3)
    assert mask.sum() == round(level * len(labels))
    assert np.array_equal(noisy[~mask], labels[~mask])
    # every corrupted sample holds another sample's whole label (a row of the clean labels, not its own)
    rows = {tuple(r) for r in labels.tolist()}
    assert all(tuple(r) in rows for r in noisy[mask].tolist())
    assert not np.any(np.all(noisy[mask] == labels[mask], axis=1))
    assert noisy.min() >= labels.min() and noisy.max() <= labels.max()  # no label outside the observed range


def test_resample_draws_the_donor_uniformly_among_the_others():
    y = np.arange(10, dtype=np.float32)  # distinct labels: the noisy value names its donor
    donors = np.concatenate([corrupt(y, "resample", 1.0, seed=s)[0] for s in range(400)])
    own = np.tile(y, 400)
    assert not np.any(donors == own)
    counts = np.bincount((donors - own + 10).astype(int) % 10, minlength=10)  # donor offset 1..9, never 0
    assert counts[0] == 0 and counts[1:].min() > 0.8 * counts[1:].mean()


def test_resample_keeps_integer_labels_integer_valued():
    y = np.random.default_rng(1).integers(0, 50, size=200).astype(np.float64)
    noisy, mask = corrupt(y, "resample", 0.3, seed=0)
    assert np.array_equal(noisy, np.round(noisy)) and set(noisy[mask]) <= set(y)


def test_gaussian_perturbs_every_sample_with_the_right_scale(labels):
    noisy, mask = corrupt(labels, "gaussian", 0.4, seed=0)
    assert mask.all()
    ratio = (noisy - labels).std(0) / (0.4 * labels.std(0))
    assert np.allclose(ratio, 1.0, atol=0.1)


@pytest.mark.parametrize("kind", ["replace", "gaussian", "resample"])
def test_same_seed_same_result_other_seed_other_result(labels, kind):
    a, ma = corrupt(labels, kind, 0.2, seed=7)
    b, mb = corrupt(labels, kind, 0.2, seed=7)
    c, _ = corrupt(labels, kind, 0.2, seed=8)
    assert np.array_equal(a, b) and np.array_equal(ma, mb)
    assert not np.array_equal(a, c)


def test_input_left_untouched(labels):
    before = labels.copy()
    corrupt(labels, "replace", 0.4, seed=0)
    corrupt(labels, "gaussian", 0.4, seed=0)
    assert np.array_equal(labels, before)


def test_test_split_untouched_and_validation_split_corrupted_too():
    ds = make_sinusoid(seed=0)
    test_before = ds.y_test.copy()
    noisy = NoisyLabels.make(ds.y_dev, "replace", 0.4, seed=0)
    assert noisy.y.shape == ds.y_dev.shape
    assert np.array_equal(ds.y_test, test_before)
    # the noise mask and the validation split are independent draws: both splits get about p of the noise
    frac_val = noisy.mask[ds.val].mean()
    frac_train = noisy.mask[~ds.val].mean()
    assert abs(frac_val - 0.4) < 0.08 and abs(frac_train - 0.4) < 0.05


@pytest.mark.parametrize("level", [-0.1, 1.5, float("nan")])
def test_level_outside_unit_interval_is_a_value_error(labels, level):
    with pytest.raises(ValueError, match="level"):
        corrupt(labels, "replace", level, seed=0)


def test_unknown_kind_and_bad_labels_are_value_errors(labels):
    with pytest.raises(ValueError, match="kind"):
        corrupt(labels, "uniform", 0.1, seed=0)
    bad = labels.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        corrupt(bad, "replace", 0.1, seed=0)


def test_save_load_round_trip(tmp_path, labels):
    noisy = NoisyLabels.make(labels, "replace", 0.3, seed=2)
    noisy.save(tmp_path / "noisy.npz")
    back = NoisyLabels.load(tmp_path / "noisy.npz")
    assert np.array_equal(back.y, noisy.y) and np.array_equal(back.mask, noisy.mask)
    assert (back.kind, back.level, back.seed) == ("replace", 0.3, 2)
