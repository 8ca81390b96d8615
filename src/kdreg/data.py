"""Datasets as arrays, their splits, and the robust label standardization the losses work in."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kdreg.rules import validation_problem
from kdreg.seeding import rng

MAD_TO_STD = 1.4826  # consistency constant: 1.4826 * MAD estimates sigma for Gaussian data


@dataclass
class Dataset:
    """A regression dataset before noise: development samples (training + validation) and a clean test set.

    Shapes: ``x_dev (N, ...)``, ``y_dev (N, D)``, ``val (N,)`` bool marking the validation split carved from the
    development samples, ``x_test (M, ...)``, ``y_test (M, D)``. Noise is injected into ``y_dev`` only.
    """

    x_dev: np.ndarray
    y_dev: np.ndarray
    val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    name: str = "dataset"
    task: str = "regression"  # "gaze": (pitch, yaw) labels, scored by angular error too
    e_dev: np.ndarray | None = None   # (N, E) extra inputs joined before the last layer (head pose), or None
    e_test: np.ndarray | None = None  # (M, E)
    feature_names: list[str] | None = None  # a table's input columns after one-hot encoding, in x's order

    def __post_init__(self):
        check_labels(self.y_dev, "y_dev")
        check_labels(self.y_test, "y_test")
        check_finite(self.x_dev, "x_dev")
        check_finite(self.x_test, "x_test")
        if len(self.x_dev) != len(self.y_dev) or len(self.val) != len(self.y_dev):
            raise ValueError(f"{self.name}: x_dev, y_dev and val must have the same length, got "
                             f"{len(self.x_dev)}, {len(self.y_dev)}, {len(self.val)}")
        if len(self.x_test) != len(self.y_test):
            raise ValueError(f"{self.name}: x_test and y_test lengths differ: {len(self.x_test)} vs {len(self.y_test)}")
        if self.y_dev.shape[1:] != self.y_test.shape[1:]:
            raise ValueError(f"{self.name}: label dimensions differ between y_dev {self.y_dev.shape} and "
                             f"y_test {self.y_test.shape}")
        if (self.e_dev is None) != (self.e_test is None) or (
                self.e_dev is not None and (len(self.e_dev) != len(self.y_dev) or len(self.e_test) != len(self.y_test))):
            raise ValueError(f"{self.name}: extra inputs need both e_dev and e_test, one row per sample")
        if self.e_dev is not None:
            check_finite(self.e_dev, "e_dev")
            check_finite(self.e_test, "e_test")
        if self.val.all() or not self.val.any():
            raise ValueError(f"{self.name}: the validation split must be a non-empty proper subset of the "
                             "development samples")

    @property
    def label_dim(self) -> int:
        return self.y_dev.shape[1]

    def save(self, path) -> None:
        from kdreg.io import save_npz
        extra = {} if self.e_dev is None else {"e_dev": self.e_dev, "e_test": self.e_test}
        if self.feature_names is not None:
            extra["feature_names"] = np.array(self.feature_names, dtype=str)
        save_npz(path, checksum=True, x_dev=self.x_dev, y_dev=self.y_dev, val=self.val, x_test=self.x_test,
                 y_test=self.y_test, name=np.array(self.name), task=np.array(self.task), **extra)

    @classmethod
    def load(cls, path) -> "Dataset":
        from kdreg.io import load_npz
        arrays = load_npz(path, ("x_dev", "y_dev", "val", "x_test", "y_test"))
        return cls(**{k: arrays[k] for k in ("x_dev", "y_dev", "val", "x_test", "y_test")},
                   name=str(arrays.get("name", "dataset")), task=str(arrays.get("task", "regression")),
                   e_dev=arrays.get("e_dev"), e_test=arrays.get("e_test"),
                   feature_names=None if arrays.get("feature_names") is None else arrays["feature_names"].tolist())


def check_finite(a: np.ndarray, name: str) -> None:
    if np.issubdtype(np.asarray(a).dtype, np.floating):
        bad = ~np.isfinite(a)
        if bad.any():
            rows = np.unique(np.nonzero(bad.reshape(len(a), -1))[0])
            raise ValueError(f"{name} holds {int(bad.sum())} NaN or infinite values in {len(rows)} rows "
                             f"(first rows: {rows[:5].tolist()}); clean or drop those rows")


def check_labels(y: np.ndarray, name: str) -> None:
    if np.asarray(y).ndim != 2:
        raise ValueError(f"{name} must be a 2-D (N, label_dim) array, got shape {np.shape(y)}")
    check_finite(y, name)


def validation_mask(n: int, fraction: float, seed: int) -> np.ndarray:
    """A seeded boolean mask choosing ``round(fraction·n)`` validation samples."""
    if problem := validation_problem(n, fraction):
        raise ValueError(problem)
    n_val = int(round(fraction * n))
    mask = np.zeros(n, dtype=bool)
    mask[rng(seed, "validation").choice(n, size=n_val, replace=False)] = True
    return mask


def make_sinusoid(n_train: int = 1000, n_test: int = 1000, val_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """y = sin(x): ``n_train`` development points with x ~ U(−π, π) (``val_fraction`` of them the validation
    split) and ``n_test`` clean test points on a uniform grid over [−π, π]."""
    x_dev = rng(seed, "sinusoid").uniform(-np.pi, np.pi, size=(n_train, 1)).astype(np.float32)
    x_test = np.linspace(-np.pi, np.pi, n_test, dtype=np.float32)[:, None]
    return Dataset(x_dev=x_dev, y_dev=np.sin(x_dev), val=validation_mask(n_train, val_fraction, seed),
                   x_test=x_test, y_test=np.sin(x_test), name="sinusoid")


@dataclass
class Standardizer:
    """``z = (v − center) / scale`` per dimension."""

    center: np.ndarray
    scale: np.ndarray

    @classmethod
    def robust(cls, y: np.ndarray) -> "Standardizer":
        """Median and 1.4826·MAD per dimension: the outliers being injected cannot drag them.
        Falls back to the std, then to 1, where the MAD is 0 (more than half the labels equal)."""
        y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
        center = np.median(y, axis=0)
        scale = MAD_TO_STD * np.median(np.abs(y - center), axis=0)
        scale = np.where(scale > 0, scale, y.std(axis=0))
        return cls(center, np.where(scale > 0, scale, 1.0))

    @classmethod
    def mean_std(cls, x: np.ndarray) -> "Standardizer":
        x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
        std = x.std(axis=0)
        return cls(x.mean(axis=0), np.where(std > 0, std, 1.0))

    def transform(self, v: np.ndarray) -> np.ndarray:
        return ((v - self.center) / self.scale).astype(np.float32)

    def inverse(self, z: np.ndarray) -> np.ndarray:
        return (np.asarray(z, dtype=np.float64) * self.scale + self.center).astype(np.float32)

    def to_dict(self) -> dict:
        return {"center": self.center.tolist(), "scale": self.scale.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> "Standardizer":
        return cls(np.asarray(d["center"]), np.asarray(d["scale"]))
