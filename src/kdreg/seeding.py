"""Independent random streams per purpose, so that no two steps draw the same numbers from the same seed
(a noise mask must never coincide with the validation split because both used seed 1)."""
from __future__ import annotations

import zlib

import numpy as np


def derive_seed(seed: int, *tags) -> int:
    """A 32-bit seed for one purpose of one run, stable across processes (unlike ``hash``)."""
    words = [int(seed)] + [zlib.crc32(str(t).encode()) for t in tags]
    return int(np.random.SeedSequence(words).generate_state(1)[0])


def rng(seed: int, *tags) -> np.random.Generator:
    return np.random.default_rng(derive_seed(seed, *tags))
