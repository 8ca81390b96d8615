"""A tiny MPIIGaze tree in the exact on-disk format: ``Data/Normalized/pXX/dayYY.mat`` structs written with scipy
(``data.left|right.image|gaze|pose``, ``filenames``), the Evaluation Subset lists, and a tar.gz of it."""
from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
from scipy.io import savemat

from kdreg.metrics import pitchyaw_to_vector


def _day(rng, n: int, person: int, day: int) -> dict:
    """n samples whose image brightness pattern encodes the gaze, so a CNN can learn something."""
    pitch = rng.uniform(-0.3, 0.1, n)
    yaw = rng.uniform(-0.4, 0.4, n)
    gaze = pitchyaw_to_vector(np.stack([pitch, yaw], 1))
    cols = np.linspace(-1, 1, 60)[None, None, :]
    rows = np.linspace(-1, 1, 36)[None, :, None]
    eyes = {}
    for side, sign in (("left", 1.0), ("right", -1.0)):
        img = 128 + 60 * np.tanh(3 * (sign * yaw[:, None, None] * cols + pitch[:, None, None] * rows))
        img = img + rng.normal(0, 5, img.shape)
        eyes[side] = {"image": np.clip(img, 0, 255).astype(np.uint8),
                      "gaze": gaze * np.array([sign, 1, 1]),  # the right eye sees the mirrored yaw
                      "pose": rng.normal(0, 0.1, (n, 3))}
    return {"data": eyes, "filenames": np.array([f"{i + 1:04d}.jpg" for i in range(n)], dtype=object)}


def build(root, people=("p00", "p01"), days=((1, 5), (2, 1), (3, 6)), seed: int = 0) -> Path:
    """Write ``root/MPIIGaze/...``; each person gets the given (day, samples) and an evaluation list of every
    sample, alternating eyes. Day 2 holds one sample (scipy squeezes it to scalars on load). Returns the
    ``MPIIGaze`` folder."""
    rng = np.random.default_rng(seed)
    base = Path(root) / "MPIIGaze"
    lists = base / "Evaluation Subset" / "sample list for eye image"
    lists.mkdir(parents=True, exist_ok=True)
    for p, person in enumerate(people):
        lines = []
        for day, n in days:
            folder = base / "Data" / "Normalized" / person
            folder.mkdir(parents=True, exist_ok=True)
            savemat(folder / f"day{day:02d}.mat", _day(rng, n, p, day))
            lines += [f"day{day:02d}/{i + 1:04d}.jpg {'left' if (i + day) % 2 else 'right'}" for i in range(n)]
        (lists / f"{person}.txt").write_text("\n".join(lines) + "\n")
    return base


def archive(root, out) -> Path:
    """The fixture tree packed like the official archive (``MPIIGaze/`` at the top)."""
    with tarfile.open(out, "w:gz") as tar:
        tar.add(Path(root) / "MPIIGaze", arcname="MPIIGaze")
    return Path(out)
