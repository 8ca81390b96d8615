"""CMU Multi-PIE head-pose yaw (licensed by CMU; not downloadable): scan a user's copy, prepare one compact file,
and split it by subject.

Layout of a copy: ``session0N/multiview/SSS/RR/CC_C/SSS_0N_RR_CCC_II.png`` (subject SSS, session N, recording RR,
camera CC_C, illumination II). The 13 head-height cameras give the yaw label; the elevated 08_1 and 19_1 are left
out. Images: grayscale, centre crop of ``crop`` × the shorter side, resized to ``image_size`` (bilinear).
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from kdreg.io import save_npz
from kdreg.seeding import rng

CAMERA_YAW = {"11_0": -90.0, "12_0": -75.0, "09_0": -60.0, "08_0": -45.0, "13_0": -30.0, "14_0": -15.0,
              "05_1": 0.0, "05_0": 15.0, "04_1": 30.0, "19_0": 45.0, "20_0": 60.0, "01_0": 75.0, "24_0": 90.0}
LICENSE = ("Multi-PIE is licensed by Carnegie Mellon University: request a licence and the data through "
           "https://www.cs.cmu.edu/afs/cs/project/PIE/MultiPie/Multi-Pie/Home.html, then set "
           "datasets.multipie.root to the folder holding session01 ... session04")
NAME = re.compile(r"^(\d{3})_(\d{2})_(\d{2})_(\d{3})_(\d{2})\.png$")


def scan(root) -> list[dict]:
    """Every image of a head-height camera under ``root``: path, subject, session, camera, illumination, yaw."""
    root = Path(root)
    found = []
    for path in sorted(root.glob("session0*/multiview/*/*/*/*.png")):
        camera = path.parent.name
        m = NAME.match(path.name)
        if camera not in CAMERA_YAW or not m or m.group(4) != camera.replace("_", ""):
            continue
        found.append({"path": path, "subject": int(m.group(1)), "session": int(m.group(2)), "camera": camera,
                      "illumination": int(m.group(5)), "yaw": CAMERA_YAW[camera]})
    return found


def check_root(root) -> list[dict]:
    """Refuse a missing or incomplete copy, saying what is missing and how to obtain the data."""
    root = Path(root) if root else None
    if root is None or not root.is_dir():
        raise FileNotFoundError(f"datasets.multipie.root: {root} is not a folder. {LICENSE}")
    sessions = sorted(p.name for p in root.glob("session0*") if (p / "multiview").is_dir())
    if not sessions:
        raise FileNotFoundError(f"{root} holds no sessionNN/multiview folders; point datasets.multipie.root at the "
                                f"folder that contains them. {LICENSE}")
    images = scan(root)
    missing = sorted(set(CAMERA_YAW) - {i["camera"] for i in images})
    if missing:
        raise FileNotFoundError(f"{root} ({', '.join(sessions)}) has no images from cameras {missing}: the copy is "
                                f"incomplete (expected SSS_0N_RR_CCC_II.png under multiview/SSS/RR/CC_C/). {LICENSE}")
    return images


def quick_check(root) -> None:
    """What ``check_root`` checks, without reading every file: a folder per camera somewhere in the copy. Cheap
    enough to run before every pipeline start."""
    root = Path(root) if root else None
    if root is None or not root.is_dir():
        raise FileNotFoundError(f"datasets.multipie.root: {root} is not a folder. {LICENSE}")
    if not any((p / "multiview").is_dir() for p in root.glob("session0*")):
        raise FileNotFoundError(f"{root} holds no sessionNN/multiview folders; point datasets.multipie.root at the "
                                f"folder that contains them. {LICENSE}")
    missing = [c for c in CAMERA_YAW if next(root.glob(f"session0*/multiview/*/*/{c}"), None) is None]
    if missing:
        raise FileNotFoundError(f"{root} has no folders for cameras {missing}: the copy is incomplete. {LICENSE}")


def load_image(path, image_size=(64, 64), crop: float = 0.8) -> np.ndarray:
    """Grayscale, centre crop of ``crop`` × the shorter side, bilinear resize: ``(H, W)`` uint8."""
    from PIL import Image
    with Image.open(path) as im:
        im = im.convert("L")
        w, h = im.size
        side = max(1, int(round(min(w, h) * crop)))
        left, top = (w - side) // 2, (h - side) // 2
        im = im.crop((left, top, left + side, top + side)).resize(tuple(image_size)[::-1], Image.BILINEAR)
        return np.asarray(im, dtype=np.uint8)


def prepare(root, out, image_size=(64, 64), crop: float = 0.8) -> dict:
    images = check_root(root)
    arrays = {"images": np.stack([load_image(i["path"], image_size, crop) for i in images]),
              "yaw": np.asarray([[i["yaw"]] for i in images], dtype=np.float32),
              "subject": np.asarray([i["subject"] for i in images], dtype=np.int32),
              "camera": np.asarray([i["camera"] for i in images])}
    save_npz(out, checksum=True, **arrays)
    return arrays


def subject_split(subjects: np.ndarray, test_fraction: float, val_fraction: float, seed: int):
    """Deterministic subject-disjoint split: ``(test, val)`` boolean masks over samples; no subject is in two
    splits."""
    ids = np.unique(subjects)
    if len(ids) < 3:
        raise ValueError(f"a subject-disjoint split needs at least 3 subjects, found {len(ids)}")
    order = rng(seed, "multipie subjects").permutation(ids)
    n_test = max(1, int(round(test_fraction * len(ids))))
    n_val = max(1, int(round(val_fraction * (len(ids) - n_test))))
    test_ids, val_ids = order[:n_test], order[n_test:n_test + n_val]
    return np.isin(subjects, test_ids), np.isin(subjects, val_ids)


def headpose_dataset(prepared, test_fraction: float = 0.2, val_fraction: float = 0.1, seed: int = 0):
    from kdreg.data import Dataset
    from kdreg.io import load_npz
    a = load_npz(prepared, ("images", "yaw", "subject"))
    test, val = subject_split(a["subject"], test_fraction, val_fraction, seed)
    dev = ~test
    return Dataset(x_dev=a["images"][dev], y_dev=a["yaw"][dev], val=val[dev], x_test=a["images"][test],
                   y_test=a["yaw"][test], name="multipie", task="headpose")


def source_problems(name: str, cfg: dict) -> list[str]:
    """:func:`quick_check` of the licensed copy as a list of problems, for the check before any job."""
    try:
        quick_check(cfg.get("root"))
    except FileNotFoundError as err:
        return [str(err)]
    return []
