"""Error metrics (always in original label units) and TOR's rejection quality."""
from __future__ import annotations

import numpy as np


def _pair(pred, target) -> tuple[np.ndarray, np.ndarray]:
    pred, target = np.asarray(pred, dtype=np.float64), np.asarray(target, dtype=np.float64)
    if pred.shape != target.shape:
        raise ValueError(f"prediction and target have mismatched shapes {pred.shape} and {target.shape}")
    return pred.reshape(len(pred), -1), target.reshape(len(target), -1)


def rmse(pred, target) -> float:
    """Root of the mean over samples of ‖pred − target‖²."""
    p, t = _pair(pred, target)
    return float(np.sqrt(((p - t) ** 2).sum(axis=1).mean()))


def mae(pred, target) -> float:
    """Mean over samples of ‖pred − target‖ (the absolute error for scalar labels)."""
    p, t = _pair(pred, target)
    return float(np.sqrt(((p - t) ** 2).sum(axis=1)).mean())


def pitchyaw_to_vector(pitchyaw) -> np.ndarray:
    """Gaze/pose angles (pitch, yaw) in radians -> unit vectors ``(N, 3)``, MPIIGaze convention:
    ``x = −cos p·sin y, y = −sin p, z = −cos p·cos y``."""
    a = np.asarray(pitchyaw, dtype=np.float64).reshape(-1, 2)
    p, y = a[:, 0], a[:, 1]
    return np.stack([-np.cos(p) * np.sin(y), -np.sin(p), -np.cos(p) * np.cos(y)], axis=1)


def vector_to_pitchyaw(v) -> np.ndarray:
    """Inverse of :func:`pitchyaw_to_vector`: ``pitch = arcsin(−y)``, ``yaw = arctan2(−x, −z)``."""
    v = np.asarray(v, dtype=np.float64).reshape(-1, 3)
    v = v / np.linalg.norm(v, axis=1, keepdims=True)
    return np.stack([np.arcsin(np.clip(-v[:, 1], -1, 1)), np.arctan2(-v[:, 0], -v[:, 2])], axis=1)


def angular_error_deg(pred, target) -> float:
    """Mean angle in degrees between the 3-D directions of two (pitch, yaw) arrays in radians."""
    p, t = _pair(pred, target)
    if p.shape[1] != 2:
        raise ValueError(f"angular error needs (N, 2) pitch/yaw arrays, got {p.shape}")
    cos = (pitchyaw_to_vector(p) * pitchyaw_to_vector(t)).sum(axis=1)
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))).mean())


def rejection_quality(rejected, corrupted) -> dict[str, float]:
    """Precision and recall of a rejection mask against the injected-corruption mask.

    Precision is NaN when nothing is rejected and recall NaN when nothing was corrupted: undefined, not zero.
    """
    rej, cor = np.asarray(rejected, dtype=bool), np.asarray(corrupted, dtype=bool)
    if rej.shape != cor.shape:
        raise ValueError(f"rejection and corruption masks have mismatched shapes {rej.shape} and {cor.shape}")
    hit = int((rej & cor).sum())
    return {
        "rejected_fraction": float(rej.mean()),
        "precision": hit / int(rej.sum()) if rej.any() else float("nan"),
        "recall": hit / int(cor.sum()) if cor.any() else float("nan"),
    }


def task_metrics(pred: np.ndarray, target: np.ndarray, task: str, prefix: str = "") -> dict[str, float]:
    """Test metrics in original units: RMSE and MAE; for gaze also the mean angular error in degrees; for rotated
    images (labels: rotation in degrees, log scale) the RMSE of each label, the mean absolute rotation error, and
    ``nrmse``, the two RMSEs each over its label's test standard deviation, averaged (unit-free: degrees would
    otherwise outweigh the log scale)."""
    out = {f"{prefix}rmse": rmse(pred, target), f"{prefix}mae": mae(pred, target)}
    if task == "gaze":
        out[f"{prefix}angular_deg"] = angular_error_deg(pred, target)
    if task == "rotation":
        p, t = _pair(pred, target)
        per_dim = np.sqrt(((p - t) ** 2).mean(axis=0))
        spread = t.std(axis=0)
        out[f"{prefix}rmse_rotation_deg"] = float(per_dim[0])
        out[f"{prefix}rmse_log_scale"] = float(per_dim[1])
        out[f"{prefix}mae_rotation_deg"] = float(np.abs(p[:, 0] - t[:, 0]).mean())
        out[f"{prefix}nrmse"] = float((per_dim / np.where(spread > 0, spread, 1.0)).mean())
    return out
