"""A tiny Multi-PIE tree in the real layout and file naming: sessionNN/multiview/SSS/RR/CC_C/SSS_0N_RR_CCC_II.png."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from kdreg.multipie import CAMERA_YAW


def build(root, subjects=(1, 2, 3, 4, 5), sessions=(1, 2), illuminations=(0, 7), size=(24, 30), seed=0) -> Path:
    """Small RGB PNGs whose bright band moves with the camera's yaw; the elevated 08_1 camera is written too,
    so that leaving it out is tested."""
    r = np.random.default_rng(seed)
    root = Path(root)
    cols = np.linspace(-1, 1, size[1])[None, :]
    for s in subjects:
        for n in sessions:
            for camera in [*CAMERA_YAW, "08_1"]:
                yaw = CAMERA_YAW.get(camera, 0.0) / 90
                folder = root / f"session0{n}" / "multiview" / f"{s:03d}" / "01" / camera
                folder.mkdir(parents=True, exist_ok=True)
                for ill in illuminations:
                    gray = 128 + 100 * np.exp(-((cols - yaw) ** 2) / 0.1) + r.normal(0, 8, size)
                    rgb = np.repeat(np.clip(gray, 0, 255).astype(np.uint8)[:, :, None], 3, axis=2)
                    name = f"{s:03d}_0{n}_01_{camera.replace('_', '')}_{ill:02d}.png"
                    Image.fromarray(rgb).save(folder / name)
    return root
