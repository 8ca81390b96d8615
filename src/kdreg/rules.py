"""Rules on settings that a job's own code enforces and that the params check (:func:`kdreg.config.check_params`)
says before any job runs, each stated once here. Torch-free: the check runs at every Snakemake start."""
from __future__ import annotations


def tor_mode_problem(mode, threshold) -> str | None:
    """TOR's ``mode: weight`` trains on the mixture's posteriors, which only ``threshold: mixture`` fits (absent
    keys take :class:`kdreg.losses.TORLoss`'s defaults, drop and mad)."""
    if mode == "weight" and threshold != "mixture":
        return ("mode 'weight' needs threshold 'mixture' (the other thresholds give no weights, only a mask: use "
                "mode 'drop')")
    return None


def resnet_depth_problem(depth) -> str | None:
    """A pre-activation ResNet of basic blocks has 6n + 2 layers: a stem, three stages of n two-layer blocks, a
    head (:class:`kdreg.cnn.ResNetPreactBackbone`)."""
    if depth < 8 or (depth - 2) % 6:
        return f"ResNet-preact depth must be 6n + 2 with n >= 1 (8, 14, 20, ...), got {depth}"
    return None


def validation_problem(n: int, fraction: float) -> str | None:
    """A validation split of ``round(fraction·n)`` samples must leave both splits non-empty
    (:func:`kdreg.data.validation_mask`)."""
    if not 0.0 < fraction < 1.0:
        return f"validation fraction must lie in (0, 1), got {fraction}"
    if int(round(fraction * n)) in (0, n):
        return f"{n} samples are too few for a validation fraction of {fraction}"
    return None


def folds_problem(n: int, k_folds: int) -> str | None:
    """K cross-fit teachers each train on the other K − 1 folds of ``n`` samples: at least 2 per fold
    (:func:`kdreg.teacher.train_teacher`)."""
    if k_folds > 1 and n < 2 * k_folds:
        return f"{n} training samples are too few for cross_fit: {k_folds}"
    return None
