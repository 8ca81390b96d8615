"""Images of your own (``kind: images``, an NPZ file) and the rotated digits: the file checks, the renderer, the
split by source digit, the rotation metrics, per-dataset overrides and the real pipeline on both."""
import copy
import json
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import ROOT, shrink, snakemake
from kdreg import variants
from kdreg.config import validate_params
from kdreg.images import digits_dataset, image_dataset, random_split, read_image_npz, render_digits
from kdreg.metrics import task_metrics
from kdreg.noise import level_tag

SCHEMA = ROOT / "workflow/schemas/params.schema.yaml"
DOCS = ROOT / "docs/datasets.md"


def good(n=6, side=20, d=2, seed=0) -> dict:
    r = np.random.default_rng(seed)
    images = r.integers(0, 256, size=(n, side, side), dtype=np.uint8)
    return {"images": images, "targets": images.reshape(n, -1)[:, :d].astype(np.float32)}


def with_(**keys):
    """A good file's arrays, with ``keys`` set (``None`` drops one)."""
    def arrays():
        a = good()
        for k, v in keys.items():
            if v is None:
                a.pop(k, None)
            else:
                a[k] = v() if callable(v) else v
        return a
    return arrays


def nan_at(key, row, value):
    def make():
        a = np.zeros((6, 2), np.float32)
        a[row, 1] = value
        return a
    return with_(**{key: make})


SPLIT = np.array(["train", "train", "train", "val", "test", "test"])

BAD_FILES = {
    "float images": (with_(images=np.zeros((6, 20, 20), np.float64)),
                     ["images have dtype float64, not uint8", "np.uint8(np.clip(np.round(255 * img)"]),
    "colour images": (with_(images=np.zeros((6, 20, 20, 3), np.uint8)),
                      ["images have shape (6, 20, 20, 3), not (N, H, W)", "convert colour images to grey"]),
    "flat images": (with_(images=np.zeros((6, 400), np.uint8)), ["images have shape (6, 400), not (N, H, W)"]),
    "too few images": (with_(images=np.zeros((2, 20, 20), np.uint8), targets=np.zeros((2, 1))),
                       ["images of shape (2, 20, 20)", "at least 3 images"]),
    "no targets": (with_(targets=None), ["lacks ['targets']", "targets (N, D)"]),
    "ragged targets": (with_(targets=np.zeros((5, 2))), ["targets have shape (5, 2), and images (6, 20, 20)",
                                                         "one row per image, (6, D)"]),
    "ragged extra": (with_(extra=np.zeros((7, 3))), ["extra have shape (7, 3), and images (6, 20, 20)",
                                                     "one row per image"]),
    "1-D targets": (with_(targets=np.zeros(6)), ["targets have shape (6,); give (6, D)", "targets.reshape(-1, 1)"]),
    "1-D extra": (with_(extra=np.zeros(6)), ["extra have shape (6,); give (6, D)", "extra.reshape(-1, 1)"]),
    "text targets": (with_(targets=np.array([["a"]] * 6)), ["targets have dtype <U1", "give numbers"]),
    "NaN targets": (nan_at("targets", 2, np.nan), ["targets hold 1 NaN or infinite values (rows [2])",
                                                   "drop those images or fill them"]),
    "inf targets": (nan_at("targets", 4, np.inf), ["targets hold 1 NaN or infinite values (rows [4])"]),
    "NaN extra": (nan_at("extra", 0, np.nan), ["extra hold 1 NaN or infinite values (rows [0])"]),
    "-inf extra": (nan_at("extra", 5, -np.inf), ["extra hold 1 NaN or infinite values (rows [5])"]),
    "unknown keys": (with_(labels=np.zeros(6)), ["unknown keys ['labels']", "images, targets, extra, split only"]),
    "split values": (with_(split=np.array(["train", "train", "tset", "val", "test", "Test"])),
                     ["split holds ['Test', 'tset']", "one of train, val, test"]),
    "split without test": (with_(split=np.array(["train"] * 4 + ["val"] * 2)), ["split has no test images"]),
    "split without val": (with_(split=np.array(["train"] * 4 + ["test"] * 2)), ["split has no val images"]),
    "split of numbers": (with_(split=np.arange(6)), ["split has dtype int64 and shape (6,)",
                                                     "give (6,) strings, each one of train, val, test"]),
    "split of wrong length": (with_(split=SPLIT[:5]), ["split has dtype <U5 and shape (5,)"]),
    "object split": (with_(split=SPLIT.astype(object)), ["key 'split' is an object array", "never loads",
                                                         "np.array(['train', ...])"]),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_a_bad_image_file_is_refused_naming_the_key_and_the_fix(tmp_path, case):
    arrays, messages = BAD_FILES[case]
    path = tmp_path / "mine.npz"
    np.savez(path, **arrays())
    with pytest.raises(ValueError) as err:
        read_image_npz(path)
    for message in messages:
        assert message in str(err.value), (case, str(err.value))
    assert str(path) in str(err.value)


class Sentinel:
    """Unpickling it writes a marker file: whether kdreg unpickled anything is seen on disk."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (Path(self.marker).write_text, ("unpickled",))


@pytest.mark.parametrize("key", ["images", "targets", "extra"])
def test_an_object_array_is_refused_and_never_unpickled(tmp_path, key):
    marker = tmp_path / "marker"
    arrays = good()
    arrays[key] = np.array([Sentinel(marker), {"a": 1}], dtype=object)
    np.savez(tmp_path / "evil.npz", **arrays)  # np.savez pickles object arrays
    with np.load(tmp_path / "evil.npz", allow_pickle=True) as z:  # the sentinel works: loading it writes the marker
        z[key]
    assert marker.exists()
    marker.unlink()
    with pytest.raises(ValueError, match=f"key '{key}' is an object array"):
        read_image_npz(tmp_path / "evil.npz")
    assert not marker.exists()


def test_a_file_that_is_no_npz_or_missing_is_refused_with_the_fix(tmp_path):
    (tmp_path / "te{x}t.npz").write_text("images,targets\n1,2\n")
    np.save(tmp_path / "lone.npy", good()["images"])         # one array, not an archive of keys
    (tmp_path / "cut.npz").write_bytes((lambda b: b[: len(b) // 2])(_npz_bytes(tmp_path)))
    marker = tmp_path / "marker"
    (tmp_path / "pickled.npz").write_bytes(pickle.dumps({"images": Sentinel(marker)}))  # np.load would unpickle it
    for name in ("te{x}t.npz", "lone.npy", "cut.npz", "pickled.npz"):
        with pytest.raises(ValueError) as err:
            read_image_npz(tmp_path / name)
        assert f"{tmp_path / name} is not a readable .npz" in str(err.value), str(err.value)
        assert "np.savez" in str(err.value)
    assert not marker.exists()
    with pytest.raises(FileNotFoundError, match=r"no such image file; set datasets.<name>.path to your .npz"):
        read_image_npz(tmp_path / "nowhere.npz")


def _npz_bytes(tmp_path) -> bytes:
    np.savez(tmp_path / "whole.npz", **good())
    return (tmp_path / "whole.npz").read_bytes()


@pytest.mark.parametrize("split, extra", [(False, False), (True, False), (False, True), (True, True)])
def test_a_good_file_becomes_a_dataset(tmp_path, split, extra):
    a = good(n=40, side=20)
    if split:
        a["split"] = np.array(["train"] * 24 + ["val"] * 6 + ["test"] * 10)
    if extra:
        a["extra"] = np.arange(80, dtype=np.float64).reshape(40, 2)
    np.savez(tmp_path / "mine.npz", **a)
    arrays = read_image_npz(tmp_path / "mine.npz")
    ds = image_dataset(arrays, {"image_size": [24, 24], "test_fraction": 0.25, "val_fraction": 0.2}, "mine")
    assert ds.x_dev.shape == (30, 24, 24) and ds.x_test.shape == (10, 24, 24) and ds.x_dev.dtype == np.uint8
    assert ds.y_dev.shape == (30, 2) and ds.y_dev.dtype == np.float32 and ds.val.sum() == 6
    expected = a["split"] if split else random_split(40, 0.25, 0.2, 0)
    np.testing.assert_array_equal(ds.y_test, a["targets"][expected == "test"])
    np.testing.assert_array_equal(ds.val, expected[expected != "test"] == "val")
    if extra:
        np.testing.assert_array_equal(ds.e_dev, a["extra"][expected != "test"].astype(np.float32))
    else:
        assert ds.e_dev is None and ds.e_test is None


# --- the rotated digits ------------------------------------------------------------------------------------------

def test_render_digits_is_deterministic_and_in_range():
    settings = dict(canvas=20, n_digits=30, copies=3, rotation=(-30.0, 10.0), log_scale=(-0.2, 0.1), fill=0.5)
    a, b = render_digits(**settings, seed=4), render_digits(**settings, seed=4)
    for key in ("images", "targets", "source"):
        assert a[key].tobytes() == b[key].tobytes(), key
    assert render_digits(**settings, seed=5)["images"].tobytes() != a["images"].tobytes()
    assert a["images"].shape == (90, 20, 20) and a["images"].dtype == np.uint8
    assert a["targets"].shape == (90, 2) and a["targets"].dtype == np.float32
    rot, scale = a["targets"].T
    assert rot.min() >= -30 and rot.max() <= 10 and scale.min() >= -0.2 and scale.max() <= 0.1
    assert np.ptp(rot) > 20 and np.ptp(scale) > 0.15                     # drawn over the range, not a constant
    assert len(np.unique(a["source"])) == 30 and (np.bincount(a["source"])[np.unique(a["source"])] == 3).all()
    # at most 0.5·e^0.1·√2 < 1 of the canvas even turned 45°: the whole digit inside, and bright
    assert a["images"].max() > 200 and not a["images"][:, [0, -1], :].any() and not a["images"][:, :, [0, -1]].any()


@pytest.mark.parametrize("canvas", [16, 21])
def test_a_positive_rotation_turns_the_digit_clockwise(canvas):
    """The label is what the image shows: the same digits at 0° and at +90° (scale 1) differ by a quarter turn
    clockwise (np.rot90 with k=-1), the direction render_digits documents."""
    same = dict(canvas=canvas, n_digits=12, copies=1, log_scale=(0.0, 0.0), fill=1.0, seed=3)
    upright, turned = render_digits(rotation=(0.0, 0.0), **same), render_digits(rotation=(90.0, 90.0), **same)
    np.testing.assert_array_equal(upright["source"], turned["source"])
    assert (turned["targets"][:, 0] == 90).all() and (turned["targets"][:, 1] == 0).all()
    clockwise = np.rot90(upright["images"], k=-1, axes=(1, 2)).astype(int)
    counter = np.rot90(upright["images"], k=1, axes=(1, 2)).astype(int)
    assert np.abs(clockwise - turned["images"]).max() <= 2
    assert np.abs(counter - turned["images"]).mean() > 10 * max(1, np.abs(clockwise - turned["images"]).mean())


def test_an_upright_digit_is_drawn_upright():
    """At 0° and scale 1 over the whole canvas the drawing is the source digit enlarged: not flipped or turned."""
    from sklearn.datasets import load_digits
    a = render_digits(canvas=32, n_digits=20, copies=1, rotation=(0.0, 0.0), log_scale=(0.0, 0.0), fill=1.0)
    source = load_digits().images[a["source"]]                      # (20, 8, 8), 0..16
    shrunk = a["images"].reshape(20, 8, 4, 8, 4).mean(axis=(2, 4))  # back to 8x8
    for img, src in zip(shrunk, source):
        assert np.corrcoef(img.ravel(), src.ravel())[0, 1] > 0.9


def test_digits_dataset_keeps_every_source_digit_in_one_split():
    cfg = {"canvas": 16, "n_digits": 60, "copies": 3, "test_fraction": 0.2, "val_fraction": 0.25, "data_seed": 2,
           "image_size": [99, 99]}  # digits ignore image_size: the canvas is the size
    ds = digits_dataset(cfg)
    a = render_digits(canvas=16, n_digits=60, copies=3, seed=2)
    split = random_split(len(a["source"]), 0.2, 0.25, 2, groups=a["source"])
    for name in ("train", "val", "test"):
        assert len({split[a["source"] == s][0] for s in np.unique(a["source"][split == name])}) == 1
        for s in np.unique(a["source"][split == name]):
            assert (split[a["source"] == s] == name).all()
    assert not set(a["source"][split == "test"]) & set(a["source"][split != "test"])
    assert (split == "test").sum() == 12 * 3 and (split == "val").sum() == 12 * 3
    np.testing.assert_array_equal(ds.x_test, a["images"][split == "test"])
    np.testing.assert_array_equal(ds.x_dev, a["images"][split != "test"])
    np.testing.assert_array_equal(ds.y_dev, a["targets"][split != "test"])
    np.testing.assert_array_equal(ds.val, split[split != "test"] == "val")
    assert ds.task == "rotation" and ds.x_dev.shape[1:] == (16, 16)


def test_rotation_metrics_by_hand():
    target = np.array([[10.0, 0.1], [20.0, -0.1], [30.0, 0.0]])
    pred = np.array([[13.0, 0.1], [16.0, 0.0], [30.0, 0.2]])
    m = task_metrics(pred, target, "rotation", prefix="x_")
    # rotation errors 3, -4, 0 (test std sqrt(200/3)); log-scale errors 0, 0.1, 0.2 (test std sqrt(0.02/3))
    assert m["x_rmse_rotation_deg"] == pytest.approx(np.sqrt(25 / 3))
    assert m["x_mae_rotation_deg"] == pytest.approx(7 / 3)
    assert m["x_rmse_log_scale"] == pytest.approx(np.sqrt(0.05 / 3))
    assert m["x_nrmse"] == pytest.approx((np.sqrt(25 / 200) + np.sqrt(0.05 / 0.02)) / 2)
    assert m["x_rmse"] == pytest.approx(np.sqrt((9 + 16.01 + 0.04) / 3))
    assert "x_angular_deg" not in m and "rmse_rotation_deg" not in task_metrics(pred, target, "regression")


# --- per-dataset overrides ---------------------------------------------------------------------------------------

@pytest.fixture
def committed():
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def test_digits_run_under_their_own_overrides_and_variants_that_name_them(committed):
    params = validate_params(copy.deepcopy(committed), SCHEMA)
    names = variants.result_names(params, variants.resolve(params, SCHEMA))
    own = committed["datasets"]["digits"]["overrides"]
    assert own["seeds"] == 3 and {"scratch", "oracle", "kd", "tor", "tor_multitask"} <= set(own["methods"])
    dataset, p = names["digits"]
    assert dataset == "digits" and p["seeds"] == 3 and p["methods"] == own["methods"]
    assert names["sinusoid"][1]["seeds"] == committed["seeds"] == 10
    assert names["sinusoid"][1]["methods"] == committed["methods"]
    # a variant of shared keys only is the sinusoid's; the one naming datasets.digits runs the digits alone
    assert "sinusoid-gaussian" in names and "digits-gaussian" not in names
    assert not variants.runs_for(params, "gaussian", "digits") and variants.runs_for(params, "gaussian", "sinusoid")
    assert "digits-digits_recommended" in names and "sinusoid-digits_recommended" not in names
    d, rec = names["digits-digits_recommended"]
    assert rec["seeds"] == 3 and rec["methods"] == own["methods"] and rec["predict_head"] == "auto"
    assert rec["datasets"]["digits"]["teacher"]["loss"] == "tukey"
    assert {n.split("-")[0] for n in names if not variants.split_name(n)[1].startswith("benchmark")} == {
        "sinusoid", "digits"}
    assert [n for n in names if n.startswith("digits")] == ["digits", "digits-digits_recommended"]


@pytest.mark.parametrize("overrides, message", [
    ({"datasets.digits.canvas": 32}, "datasets.digits.overrides: 'datasets.digits.canvas' does not match"),
    ({"sede": 3}, "datasets.digits.overrides: 'sede' does not match"),
    ({"pipeline.group_size": 2}, "datasets.digits.overrides: 'pipeline.group_size' does not match"),
    ({"seeds": 0}, "datasets.digits.overrides"),
    ({"methods": ["scratch", "tor_multitsk"]}, "methods.1"),
    ({"noise.levelz": [0.1]}, "datasets.digits.overrides: noise.levelz: noise has no key 'levelz'"),
])
def test_a_bad_dataset_override_is_refused_naming_it(committed, overrides, message):
    committed["datasets"]["digits"]["overrides"] = overrides
    with pytest.raises(ValueError, match=re.escape(message)):
        params = validate_params(committed, SCHEMA)
        variants.resolve(params, SCHEMA)


def test_dataset_params_refuses_keys_of_the_dataset_entry(committed):
    committed["datasets"]["digits"]["overrides"] = {"seeds": 2, "datasets.digits.canvas": 32}
    with pytest.raises(ValueError, match=re.escape("datasets.digits.overrides: ['datasets.digits.canvas'] are keys "
                                                   "of the dataset's own entry; set them in datasets.digits itself")):
        variants.dataset_params(committed, "digits")
    assert variants.dataset_params(committed, "sinusoid") is committed


# --- the params check: before any job ---------------------------------------------------------------------------

def images_entry(path) -> dict:
    return {"enabled": True, "kind": "images", "path": str(path),
            "teacher": {"model": {"kind": "resnet_preact", "depth": 8}, "train": {"epochs": 1}},
            "student": {"model": {"kind": "lenet"}, "train": {"epochs": 1}}}


def test_images_with_a_missing_file_stop_before_any_job(workdir):
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    params["datasets"]["mine"] = images_entry("no_such.npz")
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))
    proc = snakemake(workdir, "-n", "all", check=False)
    said = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "datasets.mine.path: no_such.npz: no such image file" in said, said[-2000:]
    assert not (workdir / "data").exists()
    check = subprocess.run([sys.executable, "-m", "kdreg", "check", "--params", "params.yaml"], cwd=workdir,
                           capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert check.returncode == 1 and "INVALID" in check.stdout and "Traceback" not in check.stderr
    assert "datasets.mine.path: no_such.npz: no such image file" in check.stdout


@pytest.mark.parametrize("edit, message", [
    (lambda e: e.pop("path"), "datasets.mine: 'path' is a required property"),
    (lambda e: e.update(image_size=[8, 8]), "datasets.mine.image_size.0"),
    (lambda e: e.update(student={"model": {"hidden": [4]}, "train": {"epochs": 1}}), "datasets.mine.student.model"),
])
def test_a_bad_images_entry_is_refused_naming_the_key(workdir, tmp_path, edit, message):
    np.savez(tmp_path / "ok.npz", **good())
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    params["datasets"]["mine"] = images_entry(tmp_path / "ok.npz")
    edit(params["datasets"]["mine"])
    from kdreg.config import check_params
    with pytest.raises(ValueError, match=re.escape(message)):
        check_params(validate_params(params, SCHEMA))


# --- the real pipeline ------------------------------------------------------------------------------------------

def docs_section(title: str) -> str:
    return DOCS.read_text().split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def block(section: str, lang: str) -> str:
    return section.split(f"```{lang}\n", 1)[1].split("```", 1)[0]


def tiny_cnns(entry: dict, batch_size: int = 16) -> None:
    """2-epoch (1 for digits) CNNs of the kinds the entry names, a narrow LeNet, a ResNet-preact-8."""
    assert entry["teacher"]["model"] == {"kind": "resnet_preact", "depth": 8}
    assert entry["student"]["model"]["kind"] == "lenet"
    entry["teacher"]["train"].update(epochs=2, lr=0.01, batch_size=batch_size)
    entry["student"]["model"]["width"] = 16
    entry["student"]["train"].update(epochs=2, lr=0.01, batch_size=batch_size)


def run_docs_images_example(work: Path, params: dict, npz=None) -> str:
    """docs/datasets.md's "Your own images" example in ``work``: its Python writes the file (or ``npz`` replaces
    it), its params entry is added (trained for 2 epochs), and its command's target is made. Returns the name."""
    section = docs_section("Your own images")
    entry = yaml.safe_load(block(section, "yaml"))
    (name, cfg), = entry.items()
    assert cfg["kind"] == "images" and cfg["overrides"]["seeds"] == 3
    tiny_cnns(cfg)
    cfg["overrides"].update(seeds=2, methods=["scratch", "tor_multitask"])
    params["datasets"][name] = cfg
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (work / "make_spots.py").write_text(block(section, "python"))
    commands = [line.split("#")[0].split() for line in block(section, "bash").splitlines() if line.strip()]
    assert commands[0] == ["python", "make_spots.py"] and commands[1][:3] == ["snakemake", "--cores", "2"]
    subprocess.run([sys.executable, "make_spots.py"], cwd=work, check=True)
    assert (work / cfg["path"]).exists()
    if npz is not None:
        np.savez(work / cfg["path"], **npz)
    snakemake(work, *commands[1][3:])
    return name


def image_params(committed: dict) -> dict:
    params = shrink(committed)
    params["datasets"]["sinusoid"]["enabled"] = False
    params["frontier"]["enabled"] = False
    return params


@pytest.mark.slow
@pytest.mark.parametrize("own_file", [False, True], ids=["docs_example", "split_and_extra"])
def test_the_docs_images_example_through_the_pipeline(tmp_path, committed, own_file):
    """The docs' example as written (the bright spots, a random split, no extra), and a file of 60 20x20 images
    with a split and an extra input in its place."""
    npz = None
    if own_file:
        r = np.random.default_rng(1)
        images = r.integers(0, 256, size=(60, 20, 20), dtype=np.uint8)
        targets = np.stack([images[:, :10].mean(axis=(1, 2)), images[:, :, :10].mean(axis=(1, 2))], 1) / 255
        npz = {"images": images, "targets": targets, "extra": r.normal(size=(60, 3)),
               "split": np.array(["train"] * 36 + ["val"] * 12 + ["test"] * 12)}
    work = tmp_path / "work"
    work.mkdir()
    name = run_docs_images_example(work, image_params(committed), npz)
    metrics = json.loads((work / f"results/metrics/{name}.json").read_text())
    for level in ("0", "0.3"):
        for model in ("teacher", "scratch", "tor_multitask"):
            assert f"p{level}.{model}.rmse_mean" in metrics and f"p{level}.{model}.rmse_ci95" in metrics
    assert not any(".oracle." in k for k in metrics)  # the entry's overrides: its methods only
    runs = pd.read_csv(work / f"results/evaluation/{name}_runs.csv")
    assert sorted(runs.seed.unique()) == [0, 1]
    snakemake(work, "all")
    for figure in ("examples", "error_vs_noise"):
        assert (work / f"results/figures/{name}_{figure}.png").stat().st_size > 0, figure


@pytest.mark.slow
def test_digits_through_the_pipeline(tmp_path, committed):
    params = image_params(committed)
    digits = params["datasets"]["digits"]
    digits.update(enabled=True, n_digits=40, copies=1, canvas=16)
    tiny_cnns(digits)
    for role in ("teacher", "student"):
        digits[role]["train"]["epochs"] = 1
    digits["overrides"]["seeds"] = 2
    work = tmp_path / "work"
    work.mkdir()
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    snakemake(work, "digits")
    metrics = json.loads((work / "results/metrics/digits.json").read_text())
    for level in params["noise"]["levels"]:
        for model in ("teacher", *digits["overrides"]["methods"]):
            for stat in ("mean", "ci95"):
                assert f"p{level_tag(level)}.{model}.nrmse_{stat}" in metrics, (level, model, stat)
    runs = pd.read_csv(work / "results/evaluation/digits_runs.csv")
    assert {"rmse_rotation_deg", "rmse_log_scale", "mae_rotation_deg", "nrmse"} <= set(runs.columns)
    assert sorted(runs.seed.unique()) == [0, 1]
    assert (work / "results/figures/digits_examples.png").stat().st_size > 0
    assert not (work / "results/metrics/sinusoid.json").exists()
