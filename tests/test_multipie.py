import numpy as np
import pytest

from kdreg import multipie as mp
from multipie_fixture import build


def test_camera_to_yaw_map():
    assert len(mp.CAMERA_YAW) == 13
    assert sorted(mp.CAMERA_YAW.values()) == list(np.arange(-90.0, 91.0, 15.0))
    assert mp.CAMERA_YAW["05_1"] == 0 and mp.CAMERA_YAW["11_0"] == -90 and mp.CAMERA_YAW["24_0"] == 90
    assert "08_1" not in mp.CAMERA_YAW and "19_1" not in mp.CAMERA_YAW


def test_scan_reads_the_layout_and_leaves_out_elevated_cameras(tmp_path):
    build(tmp_path, subjects=(1, 2), sessions=(1,), illuminations=(0,))
    images = mp.scan(tmp_path)
    assert len(images) == 2 * 13
    assert {i["camera"] for i in images} == set(mp.CAMERA_YAW)
    first = next(i for i in images if i["camera"] == "04_1" and i["subject"] == 2)
    assert first["yaw"] == 30 and first["session"] == 1 and first["path"].name == "002_01_01_041_00.png"


def test_prepare_grayscale_crop_resize(tmp_path):
    build(tmp_path / "mp", subjects=(1, 2, 3), sessions=(1,), illuminations=(0,))
    arrays = mp.prepare(tmp_path / "mp", tmp_path / "prep.npz", image_size=(16, 20), crop=0.8)
    assert arrays["images"].shape == (39, 16, 20) and arrays["images"].dtype == np.uint8
    assert arrays["yaw"].shape == (39, 1)
    # the bright band sits right of centre for positive yaw, left for negative
    right = arrays["images"][arrays["yaw"][:, 0] == 90].mean(axis=(0, 1))
    left = arrays["images"][arrays["yaw"][:, 0] == -90].mean(axis=(0, 1))
    assert right[-3:].mean() > right[:3].mean() and left[:3].mean() > left[-3:].mean()


def test_split_is_subject_disjoint_and_deterministic():
    subjects = np.repeat(np.arange(1, 21), 26)
    test, val = mp.subject_split(subjects, 0.2, 0.1, seed=0)
    train = ~test & ~val
    for a, b in ((test, val), (test, train), (val, train)):
        assert not set(subjects[a]) & set(subjects[b])
    assert len(set(subjects[test])) == 4 and len(set(subjects[val])) == 2
    again, _ = mp.subject_split(subjects, 0.2, 0.1, seed=0)
    other, _ = mp.subject_split(subjects, 0.2, 0.1, seed=1)
    assert np.array_equal(test, again) and not np.array_equal(test, other)


def test_missing_or_incomplete_root_says_what_and_how_to_get_the_licence(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a folder.*licence"):
        mp.check_root(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no sessionNN/multiview"):
        mp.check_root(tmp_path / "empty")
    build(tmp_path / "partial", subjects=(1,), sessions=(1,), illuminations=(0,))
    import shutil
    for cam in ("11_0", "24_0"):
        shutil.rmtree(tmp_path / "partial/session01/multiview/001/01" / cam)
    with pytest.raises(FileNotFoundError, match=r"no images from cameras \['11_0', '24_0'\].*cmu"):
        mp.check_root(tmp_path / "partial")
