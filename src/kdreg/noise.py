"""Label-noise injection: corrupted training labels and the mask of which samples were corrupted."""
from __future__ import annotations

import numpy as np

from kdreg.seeding import rng

KINDS = ("replace", "gaussian", "resample")


def level_tag(level: float) -> str:
    """``0.2 -> "0.2"``, ``0.0 -> "0"``: how a noise level is spelled in paths and metric keys (levels that
    spell alike are refused by the params check, so a tag names one level)."""
    return f"{float(level):g}"


def corrupt(y: np.ndarray, kind: str = "replace", level: float = 0.0, seed: int = 0,
            spread: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(noisy, mask)`` for labels ``y`` of shape ``(N,)`` or ``(N, D)``; ``y`` is left untouched.

    - ``replace`` (the regression analogue of symmetric label noise): exactly ``round(level·N)`` samples, drawn
      without replacement, get a label drawn uniformly per dimension from the clean label range widened by
      ``spread`` of that range on each side. ``mask`` marks them.
    - ``gaussian``: every sample gets ``y + N(0, (level·σ_y)²)`` with σ_y the per-dimension std of ``y``;
      ``mask`` is all True when ``level > 0``.
    - ``resample`` (realistic for real tables: a record mixed up with another): exactly ``round(level·N)``
      samples, drawn without replacement, get the whole clean label of another sample drawn uniformly from the
      other N − 1, so every noisy label is one the data holds (no negative price or mpg). ``mask`` marks them.
      A sample may draw an equal label (duplicates in the data): it stays marked.
    """
    y = np.asarray(y)
    if kind not in KINDS:
        raise ValueError(f"unknown noise kind {kind!r}; choose one of {KINDS}")
    if not (isinstance(level, (int, float)) and 0.0 <= level <= 1.0):
        raise ValueError(f"noise level must lie in [0, 1], got {level!r}")
    if spread < 0:
        raise ValueError(f"noise spread must be >= 0, got {spread}")
    if y.ndim not in (1, 2) or y.shape[0] == 0:
        raise ValueError(f"labels must be a non-empty (N,) or (N, D) array, got shape {y.shape}")
    if not np.isfinite(y).all():
        raise ValueError(f"labels hold {int((~np.isfinite(y)).sum())} NaN or infinite values; clean them first")
    gen = rng(seed, "noise", kind)
    y2 = y.reshape(len(y), -1).astype(np.float64)
    noisy = y2.copy()
    n = len(y2)
    if kind == "replace":
        mask = np.zeros(n, dtype=bool)
        idx = gen.choice(n, size=int(round(level * n)), replace=False)
        mask[idx] = True
        lo, hi = y2.min(axis=0), y2.max(axis=0)
        width = hi - lo
        noisy[idx] = gen.uniform(lo - spread * width, hi + spread * width, size=(len(idx), y2.shape[1]))
    elif kind == "resample":
        mask = np.zeros(n, dtype=bool)
        idx = gen.choice(n, size=int(round(level * n)), replace=False)
        mask[idx] = True
        if n < 2 and len(idx):
            raise ValueError("resample noise needs at least 2 labels to swap one for another")
        other = gen.integers(0, n - 1, size=len(idx))
        other += other >= idx  # uniform over the n - 1 samples other than i itself
        noisy[idx] = y2[other]
    else:
        sigma = y2.std(axis=0)
        noisy = y2 + gen.normal(size=y2.shape) * (level * sigma)
        mask = np.full(n, level > 0)
    return noisy.astype(y.dtype if np.issubdtype(y.dtype, np.floating) else np.float64).reshape(y.shape), mask


class NoisyLabels:
    """Corrupted development labels ``y (N, D)`` with the corruption ``mask (N,)`` and how they were made."""

    def __init__(self, y: np.ndarray, mask: np.ndarray, kind: str = "replace", level: float = 0.0, seed: int = 0):
        self.y, self.mask = np.asarray(y, dtype=np.float32), np.asarray(mask, dtype=bool)
        self.kind, self.level, self.seed = kind, float(level), int(seed)
        if self.y.ndim != 2 or self.mask.shape != (len(self.y),):
            raise ValueError(f"noisy labels must be (N, D) with an (N,) mask, got {self.y.shape} and {self.mask.shape}")

    @classmethod
    def make(cls, y_clean: np.ndarray, kind: str, level: float, seed: int, spread: float = 0.5) -> "NoisyLabels":
        noisy, mask = corrupt(y_clean, kind, level, seed, spread)
        return cls(noisy, mask, kind, level, seed)

    def save(self, path) -> None:
        from kdreg.io import save_npz
        save_npz(path, checksum=True, y=self.y, mask=self.mask, kind=np.array(self.kind), level=np.array(self.level),
                 seed=np.array(self.seed))

    @classmethod
    def load(cls, path) -> "NoisyLabels":
        from kdreg.io import load_npz
        a = load_npz(path, ("y", "mask", "kind", "level", "seed"))
        return cls(a["y"], a["mask"], str(a["kind"]), float(a["level"]), int(a["seed"]))
