"""Image-regression data: your own images from an NPZ file (``kind: images``) and the rotated-digits experiment
(``digits``), through one loader.

A user's file holds

    images   (N, H, W) uint8      grey levels 0..255
    targets  (N, D)    float      the labels (D >= 1)
    extra    (N, E)    float      optional: inputs joined before the last layer (like head pose)
    split    (N,)      str        optional: "train" | "val" | "test" per image; otherwise a random split by
                                  data_seed (test_fraction, val_fraction)

It is read with ``allow_pickle=False``: an object array is refused, never unpickled. Every problem is reported
with the key and the fix. The digits experiment renders scikit-learn's bundled handwritten digits into the same
arrays (plus the source digit of each image, so no rotated copy of a test digit is ever trained on).
"""
from __future__ import annotations

import functools
import zipfile
from pathlib import Path

import numpy as np

from kdreg.data import Dataset
from kdreg.seeding import rng

KEYS = ("images", "targets", "extra", "split")
SPLITS = ("train", "val", "test")
MAX_SIDE = 1024          # pixels per side: larger images are refused (resize them first, or set image_size)
FIX_IMAGES = "save grey levels as uint8, e.g. np.uint8(np.clip(np.round(255 * img), 0, 255)) for floats in [0, 1]"


def read_image_npz(path) -> dict[str, np.ndarray]:
    """The arrays of a user's image file, checked: ``{"images", "targets", ["extra"], ["split"]}``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such image file; set datasets.<name>.path to your .npz (keys: images "
                                "(N, H, W) uint8, targets (N, D), optional extra (N, E) and split (N,))")
    def not_npz(why) -> ValueError:
        return ValueError(f"{path} is not a readable .npz ({why}); write it with np.savez or np.savez_compressed "
                          "(keys: images, targets, optional extra and split)")
    if not zipfile.is_zipfile(path):  # np.load would read a lone .npy array, or refuse a pickle with its own words
        raise not_npz("not a zip archive, as np.savez writes")
    arrays = {}
    try:
        with np.load(path, allow_pickle=False) as z:
            unknown = [k for k in z.files if k not in KEYS]
            if unknown:
                raise ValueError(f"{path}: unknown keys {unknown}; an image file holds {', '.join(KEYS)} only "
                                 "(rename or drop the others)")
            for key in z.files:
                try:
                    arrays[key] = z[key]
                except ValueError as err:
                    if "allow_pickle" in str(err) or "Object arrays" in str(err):
                        raise ValueError(f"{path}: key {key!r} is an object array (pickled Python objects, which "
                                         f"kdreg never loads); save it as a plain numeric array (split: an array "
                                         f"of strings, np.array(['train', ...]))") from None
                    raise
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        raise not_npz(err) from None
    return check_image_arrays(arrays, str(path))


def check_image_arrays(arrays: dict, where: str) -> dict[str, np.ndarray]:
    """Shapes, dtypes and values of image arrays (see the module docstring); returns them normalized:
    targets and extra float32, split as a str array."""
    missing = [k for k in ("images", "targets") if k not in arrays]
    if missing:
        raise ValueError(f"{where}: lacks {missing}; an image file needs images (N, H, W) uint8 and targets (N, D)")
    images, out = arrays["images"], {}
    if images.dtype != np.uint8:
        raise ValueError(f"{where}: images have dtype {images.dtype}, not uint8; {FIX_IMAGES}")
    if images.ndim != 3:
        raise ValueError(f"{where}: images have shape {images.shape}, not (N, H, W) grey levels; convert colour "
                         "images to grey and drop any channel axis")
    n, h, w = images.shape
    if n < 3 or min(h, w) < 1 or max(h, w) > MAX_SIDE:
        raise ValueError(f"{where}: images of shape {images.shape}: need at least 3 images of at most "
                         f"{MAX_SIDE}×{MAX_SIDE} pixels (resize larger ones, or set image_size)")
    out["images"] = images
    for key, required in (("targets", True), ("extra", False)):
        if key not in arrays:
            continue
        a = arrays[key]
        if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
            raise ValueError(f"{where}: {key} have dtype {a.dtype}; give numbers (float32 or float64)")
        if a.ndim == 1:
            raise ValueError(f"{where}: {key} have shape {a.shape}; give ({n}, D) with one column per "
                             f"{'label' if key == 'targets' else 'input'}, e.g. {key}.reshape(-1, 1)")
        if a.ndim != 2 or len(a) != n or a.shape[1] < 1:
            raise ValueError(f"{where}: {key} have shape {a.shape}, and images {images.shape}: give one row per "
                             f"image, ({n}, D)")
        a = a.astype(np.float32)
        bad = ~np.isfinite(a)
        if bad.any():
            rows = np.unique(np.nonzero(bad)[0])
            raise ValueError(f"{where}: {key} hold {int(bad.sum())} NaN or infinite values (rows "
                             f"{rows[:5].tolist()}{' ...' if len(rows) > 5 else ''}); drop those images or fill them")
        out[key] = a
    if "split" in arrays:
        s = arrays["split"]
        if s.dtype.kind not in "US" or s.shape != (n,):
            raise ValueError(f"{where}: split has dtype {s.dtype} and shape {s.shape}; give ({n},) strings, each "
                             f"one of {', '.join(SPLITS)}")
        s = s.astype(str)
        wrong = sorted(set(np.unique(s).tolist()) - set(SPLITS))  # plain str: numpy 2 would print np.str_(...)
        if wrong:
            raise ValueError(f"{where}: split holds {wrong[:5]}; each value must be one of {', '.join(SPLITS)}")
        empty = [name for name in SPLITS if not (s == name).any()]
        if empty:
            raise ValueError(f"{where}: split has no {' or '.join(empty)} images; each of {', '.join(SPLITS)} "
                             "needs at least one")
        out["split"] = s
    return out


def random_split(n: int, test_fraction: float, val_fraction: float, seed: int,
                 groups: np.ndarray | None = None) -> np.ndarray:
    """``(n,)`` split names: ``test_fraction`` of the groups (each image its own group by default) are test,
    ``val_fraction`` of the rest validation. Images of one group always share a split."""
    groups = np.arange(n) if groups is None else np.asarray(groups)
    ids = np.unique(groups)
    if len(ids) < 3:
        raise ValueError(f"a split needs at least 3 groups of images, found {len(ids)}")
    order = rng(seed, "image split").permutation(ids)
    n_test = min(len(ids) - 2, max(1, int(round(test_fraction * len(ids)))))
    n_val = min(len(ids) - n_test - 1, max(1, int(round(val_fraction * (len(ids) - n_test)))))
    split = np.full(n, "train", dtype="<U5")
    split[np.isin(groups, order[:n_test])] = "test"
    split[np.isin(groups, order[n_test:n_test + n_val])] = "val"
    return split


def resize_images(images: np.ndarray, size) -> np.ndarray:
    """Bilinear resize of uint8 ``(N, H, W)`` to ``size`` (H, W), uint8."""
    import torch
    from torch.nn import functional as F
    size = tuple(int(v) for v in size)
    if images.shape[1:] == size:
        return images
    x = torch.as_tensor(images, dtype=torch.float32).unsqueeze(1)
    y = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
    return y.squeeze(1).round().clamp(0, 255).to(torch.uint8).numpy()


def image_dataset(arrays: dict, cfg: dict, name: str, task: str = "regression",
                  groups: np.ndarray | None = None) -> Dataset:
    """A :class:`Dataset` from checked image arrays (:func:`check_image_arrays`): the file's split, or a random
    one by ``data_seed`` (by ``groups`` when given); images resized to ``image_size`` when the entry sets one."""
    images = arrays["images"]
    if cfg.get("image_size"):
        images = resize_images(images, cfg["image_size"])
    split = arrays.get("split")
    if split is None:
        split = random_split(len(images), float(cfg.get("test_fraction", 0.2)), float(cfg.get("val_fraction", 0.2)),
                             int(cfg.get("data_seed", 0)), groups)
    test, dev = split == "test", split != "test"
    extra = arrays.get("extra")
    return Dataset(x_dev=images[dev], y_dev=arrays["targets"][dev], val=split[dev] == "val", x_test=images[test],
                   y_test=arrays["targets"][test], name=name, task=task,
                   e_dev=None if extra is None else extra[dev], e_test=None if extra is None else extra[test])


def images_file_problems(name: str, cfg: dict) -> list[str]:
    """The check before any job: the user's file exists and reads as image arrays."""
    path = Path(cfg.get("path") or "")
    stat = path.stat() if path.is_file() else None
    problem = _file_problem(str(path), stat and (stat.st_size, stat.st_mtime_ns))
    return [f"datasets.{name}.path: {problem}"] if problem else []


@functools.lru_cache(maxsize=16)
def _file_problem(path: str, version) -> str | None:
    """Why ``path`` is no image file, or None; read once per file version (``version``: its size and mtime), not
    once per variant the params check validates."""
    try:
        read_image_npz(path)
    except (FileNotFoundError, ValueError) as err:
        return str(err)
    return None


# --- the rotated-digits experiment -------------------------------------------------------------------------------

def render_digits(canvas: int = 24, n_digits: int = 1797, copies: int = 2, rotation=(-45.0, 45.0),
                  log_scale=(-0.3, 0.3), fill: float = 0.6, seed: int = 0) -> dict[str, np.ndarray]:
    """scikit-learn's 1,797 handwritten digits (8×8, 17 grey levels; UCI), each drawn ``copies`` times into a
    ``canvas``² image under a random rotation (degrees, uniform in ``rotation``) and scale (``exp(s)``, s uniform in
    ``log_scale``), by bilinear sampling: at scale 1 the digit spans ``fill`` of the canvas. Labels (N, 2):
    (rotation in degrees, log scale). Returns image arrays plus ``source`` (N,), the digit each image was drawn
    from (splits keep a digit's copies together)."""
    import torch
    from sklearn.datasets import load_digits
    from torch.nn import functional as F
    digits = load_digits().images.astype(np.float32) / 16.0                 # (1797, 8, 8) in [0, 1]
    if not 1 <= n_digits <= len(digits):
        raise ValueError(f"digits: n_digits must be 1..{len(digits)}, got {n_digits}")
    r = rng(seed, "digits")
    chosen = np.sort(r.choice(len(digits), size=n_digits, replace=False))
    source = np.repeat(chosen, copies)                                      # (N,)
    n = len(source)
    angle = r.uniform(*rotation, size=n).astype(np.float32)
    scale = r.uniform(*log_scale, size=n).astype(np.float32)
    # Output pixel p (in [-1, 1] canvas coordinates) samples the digit at R(-θ)·p / (fill·e^s): the digit appears
    # rotated by θ clockwise on screen (image rows run down) and scaled by fill·e^s.
    theta = np.deg2rad(angle)
    inv = 1.0 / (fill * np.exp(scale))
    cos, sin = np.cos(theta) * inv, np.sin(theta) * inv
    affine = np.stack([np.stack([cos, sin, 0 * cos], 1), np.stack([-sin, cos, 0 * cos], 1)], 1)   # (N, 2, 3)
    src = torch.as_tensor(digits[source]).unsqueeze(1)                     # (N, 1, 8, 8)
    grid = F.affine_grid(torch.as_tensor(affine, dtype=torch.float32), [n, 1, canvas, canvas], align_corners=False)
    out = F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    images = (out.squeeze(1).clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    targets = np.stack([angle, scale], 1).astype(np.float32)
    return {"images": images, "targets": targets, "source": source}


DIGITS_SETTINGS = {"canvas": "canvas", "n_digits": "n_digits", "copies": "copies", "rotation": "rotation",
                   "log_scale": "log_scale", "fill": "fill", "seed": "data_seed"}


def digits_dataset(cfg: dict) -> Dataset:
    """The rotated-digits dataset of a params entry: rendered, then split by source digit."""
    a = render_digits(**{arg: cfg[key] for arg, key in DIGITS_SETTINGS.items() if key in cfg})
    arrays = check_image_arrays({"images": a["images"], "targets": a["targets"]}, "digits")
    return image_dataset(arrays, {k: v for k, v in cfg.items() if k != "image_size"}, "digits", task="rotation",
                         groups=a["source"])
