import numpy as np
import pytest

from kdreg import mpiigaze as mg
from kdreg.metrics import angular_error_deg, pitchyaw_to_vector
from mpiigaze_fixture import archive, build


def test_gaze_conversion_hand_values():
    # looking straight into the camera: -z
    np.testing.assert_allclose(mg.gaze_to_pitchyaw([0, 0, -1]), [[0, 0]], atol=1e-12)
    # looking up (y is down in camera space): pitch +30°
    up = [0, -np.sin(np.radians(30)), -np.cos(np.radians(30))]
    np.testing.assert_allclose(np.degrees(mg.gaze_to_pitchyaw(up)), [[30, 0]], atol=1e-9)
    # looking towards -x: yaw +90°
    np.testing.assert_allclose(np.degrees(mg.gaze_to_pitchyaw([-1, 0, 0])), [[0, 90]], atol=1e-9)
    # unnormalized vectors and the round trip
    py = np.array([[0.2, -0.5], [-0.1, 0.3]])
    np.testing.assert_allclose(mg.gaze_to_pitchyaw(3 * pitchyaw_to_vector(py)), py, atol=1e-12)


def test_pose_conversion_hand_values():
    np.testing.assert_allclose(mg.pose_to_pitchyaw([0, 0, 0]), [[0, 0]], atol=1e-12)
    a = np.radians(20)
    # rotation about y by a: the head's z axis is (sin a, 0, cos a) -> yaw a
    np.testing.assert_allclose(mg.pose_to_pitchyaw([0, a, 0]), [[0, a]], atol=1e-12)
    # rotation about x by a: z axis (0, -sin a, cos a) -> pitch -a
    np.testing.assert_allclose(mg.pose_to_pitchyaw([a, 0, 0]), [[-a, 0]], atol=1e-12)
    # Rodrigues against a matrix exponential computed independently
    from scipy.linalg import expm
    v = np.array([0.3, -0.2, 0.5])
    k = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    np.testing.assert_allclose(mg.rodrigues(v)[0], expm(k), atol=1e-12)


def test_angular_error_hand_values():
    assert angular_error_deg([[0, 0]], [[0, np.radians(10)]]) == pytest.approx(10)
    assert angular_error_deg([[np.radians(5), 0]], [[np.radians(-5), 0]]) == pytest.approx(10)
    assert angular_error_deg([[0.1, 0.2], [0, 0]], [[0.1, 0.2], [0, np.radians(4)]]) == pytest.approx(2)


def test_right_eye_flip_mirrors_image_and_negates_yaw():
    img = np.arange(2 * 36 * 60, dtype=np.uint8).reshape(2, 36, 60)
    gaze, pose = np.array([[0.1, 0.2], [0.3, -0.4]]), np.array([[0.05, 0.1], [0.0, -0.2]])
    fi, fg, fp = mg.flip_right_eye(img, gaze, pose)
    np.testing.assert_array_equal(fi[:, :, 0], img[:, :, -1])
    np.testing.assert_array_equal(fg, [[0.1, -0.2], [0.3, 0.4]])
    np.testing.assert_array_equal(fp, [[0.05, -0.1], [0.0, 0.2]])


def test_single_sample_day_loads_as_one_row(tmp_path):
    base = build(tmp_path)
    day = mg.load_day(base / "Data/Normalized/p00/day02.mat")
    assert day["filenames"] == ["0001.jpg"]
    assert day["left"]["image"].shape == (1, 36, 60) and day["right"]["gaze"].shape == (1, 3)


def test_prepared_file_contents(tmp_path):
    base = build(tmp_path)
    out = tmp_path / "prepared.npz"
    arrays = mg.prepare(base, out, people=["p00", "p01"], per_person=12)
    assert arrays["images"].shape == (24, 36, 60) and arrays["images"].dtype == np.uint8
    assert arrays["gaze"].shape == (24, 2) and arrays["gaze"].dtype == np.float32
    assert arrays["person"].tolist() == [0] * 12 + [1] * 12
    # p00 day01/0002.jpg is listed as a right eye: flipped, yaw negated into the left-eye frame
    day = mg.load_day(base / "Data/Normalized/p00/day01.mat")
    raw = mg.gaze_to_pitchyaw(day["right"]["gaze"][1])[0]
    np.testing.assert_allclose(arrays["gaze"][1], [raw[0], -raw[1]], atol=1e-6)
    np.testing.assert_array_equal(arrays["images"][1], day["right"]["image"][1][:, ::-1])
    # day01/0001.jpg is a left eye: unchanged
    np.testing.assert_allclose(arrays["gaze"][0], mg.gaze_to_pitchyaw(day["left"]["gaze"][0])[0], atol=1e-6)
    np.testing.assert_array_equal(arrays["images"][0], day["left"]["image"][0])
    assert (tmp_path / "prepared.npz.sha256").exists()


def test_prepare_checks_the_sample_count(tmp_path):
    base = build(tmp_path)
    with pytest.raises(ValueError, match="lists 12 samples, expected 3000"):
        mg.prepare(base, tmp_path / "p.npz", people=["p00"])


def test_download_verify_extract_local_archive(tmp_path):
    src = build(tmp_path / "src", people=mg.PEOPLE, days=((1, 2),))
    tgz = archive(src.parent, tmp_path / "MPIIGaze.tar.gz")
    got = mg.download(tgz.as_uri(), tmp_path / "raw" / "MPIIGaze.tar.gz")
    assert got.read_bytes() == tgz.read_bytes()
    mg.verify_archive(got)
    assert (tmp_path / "raw" / "MPIIGaze.tar.gz.sha256").exists()
    mg.verify_archive(got)  # second time: against the recorded checksum
    base = mg.extract(got, tmp_path / "raw" / "extracted")
    assert (base / "Data/Normalized/p14/day01.mat").exists()
    arrays = mg.prepare(base, tmp_path / "prep.npz", per_person=2)
    assert arrays["images"].shape == (30, 36, 60)


def test_corrupt_or_wrong_archive_is_refused(tmp_path):
    bad = tmp_path / "MPIIGaze.tar.gz"
    bad.write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(ValueError, match="not a readable tar"):
        mg.verify_archive(bad)
    src = build(tmp_path / "src", people=["p00"], days=((1, 2),))
    partial = archive(src.parent, tmp_path / "partial.tar.gz")
    with pytest.raises(ValueError, match="lacks .* expected members"):
        mg.verify_archive(partial)
    full = build(tmp_path / "full", people=mg.PEOPLE, days=((1, 1),))
    good = archive(full.parent, tmp_path / "good.tar.gz")
    mg.verify_archive(good)
    good.write_bytes(good.read_bytes()[:-10])  # changed after its checksum was recorded
    with pytest.raises(ValueError, match="does not match the SHA-256"):
        mg.verify_archive(good)


def test_cnn_teacher_and_two_headed_student_train_on_a_fold(tmp_path):
    import torch

    from kdreg.noise import NoisyLabels
    from kdreg.train import train_student, train_teacher
    torch.set_num_threads(1)
    base = build(tmp_path, days=((1, 30), (2, 1), (3, 30)))
    mg.prepare(base, tmp_path / "prep.npz", people=["p00", "p01"], per_person=61)
    ds = mg.fold_dataset(tmp_path / "prep.npz", "p01", val_fraction=0.2, seed=0)
    assert ds.x_dev.shape == (61, 36, 60) and ds.e_dev.shape == (61, 2) and ds.task == "gaze"
    noisy = NoisyLabels.make(ds.y_dev, "replace", 0.2, seed=0)
    teacher = train_teacher(ds, noisy, {"model": {"kind": "resnet_preact", "depth": 8},
                                        "train": {"epochs": 3, "lr": 0.01, "batch_size": 16, "eval_every": 1}},
                            seed=0, device="cpu")
    assert teacher.t_dev.shape == (61, 2) and np.isfinite(teacher.metrics["angular_deg"])
    student = train_student(ds, noisy, teacher.t_dev, "tor_multitask",
                            {"model": {"kind": "lenet", "width": 32}, "train": {"epochs": 3, "lr": 0.01, "batch_size": 16}},
                            seed=0, device="cpu")
    for key in ("angular_deg", "label_head_angular_deg", "teacher_head_angular_deg", "rejection_recall"):
        assert key in student.metrics
