"""What a model trains on: the training split of one noisy dataset, standardized, as tensors on the device, and
the architecture config that fits the data.

Targets are robustly standardized (median, 1.4826·MAD of the noisy training labels); tabular inputs are
standardized on the training split; images stay uint8 and the network scales them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from kdreg.data import Dataset, Standardizer
from kdreg.noise import NoisyLabels
from kdreg.trainer import Inputs


@dataclass
class Prepared:
    """The training split of one noisy dataset, standardized, as tensors on the device."""

    x: torch.Tensor        # (N, ...) inputs
    y: torch.Tensor        # (N, D) standardized noisy labels
    y_clean: torch.Tensor  # (N, D) standardized clean labels (oracle only)
    x_val: torch.Tensor
    y_val: np.ndarray      # (V, D) noisy validation labels, original units
    y_val_clean: np.ndarray  # (V, D) clean validation labels (oracle only)
    x_test: torch.Tensor
    corrupted: np.ndarray  # (N,) bool
    y_scaler: Standardizer
    x_scaler: Standardizer | None


def model_inputs(x: np.ndarray, e: np.ndarray | None, x_scaler: Standardizer | None, device):
    """What a model is called with: standardized tabular inputs (or uint8 images, which the network scales to
    [0, 1], kept 4× smaller), plus the extra inputs (head pose) when there are any."""
    if x_scaler is not None:
        x = x_scaler.transform(x)
    elif x.dtype != np.uint8:
        x = np.asarray(x, dtype=np.float32)
    x = torch.as_tensor(np.ascontiguousarray(x), device=device)
    return x if e is None else Inputs(x, torch.as_tensor(np.asarray(e, dtype=np.float32), device=device))


def prepare(dataset: Dataset, noisy: NoisyLabels, device: torch.device) -> Prepared:
    if noisy.y.shape != dataset.y_dev.shape:
        raise ValueError(f"noisy labels {noisy.y.shape} do not match the dataset's labels {dataset.y_dev.shape}; "
                         "they were made from another dataset: rerun the noise step")
    tr, va = ~dataset.val, dataset.val
    y_scaler = Standardizer.robust(noisy.y[tr])
    # Tabular inputs are standardized on the training split; images arrive already scaled to [0, 1].
    x_scaler = Standardizer.mean_std(dataset.x_dev[tr]) if dataset.x_dev.ndim == 2 else None

    def x_tensor(x, e):
        return model_inputs(x, e, x_scaler, device)

    def y_tensor(y):
        return torch.as_tensor(y_scaler.transform(y), device=device)

    e_dev = dataset.e_dev
    return Prepared(x=x_tensor(dataset.x_dev[tr], None if e_dev is None else e_dev[tr]), y=y_tensor(noisy.y[tr]),
                    y_clean=y_tensor(dataset.y_dev[tr]),
                    x_val=x_tensor(dataset.x_dev[va], None if e_dev is None else e_dev[va]), y_val=noisy.y[va],
                    y_val_clean=dataset.y_dev[va],
                    x_test=x_tensor(dataset.x_test, dataset.e_test),
                    corrupted=noisy.mask[tr], y_scaler=y_scaler, x_scaler=x_scaler)


def default_models(n_features: int) -> tuple[dict, dict]:
    """MLP sizes scaled to the number of features when params give none: a wide teacher, a student about 1/20
    of its size or less."""
    t = int(min(512, max(64, 32 * n_features)))
    s = int(max(4, min(32, n_features)))
    return {"hidden": [t, t, t], "activation": "tanh"}, {"hidden": [s], "activation": "tanh"}


def model_config(dataset: Dataset, model_cfg: dict, heads: int = 1, role: str = "student") -> dict:
    """The full architecture config of ``create_model`` from the params' ``model`` section and the data; an MLP
    without ``hidden`` gets sizes scaled to the number of inputs (:func:`default_models`)."""
    if model_cfg.get("kind", "mlp") == "mlp":
        in_dim = int(np.prod(dataset.x_dev.shape[1:]))
        if "hidden" not in model_cfg:
            model_cfg = {**default_models(in_dim)[0 if role == "teacher" else 1], **model_cfg}
        return {"kind": "mlp", "in_dim": in_dim, "out_dim": dataset.label_dim, "heads": heads, **model_cfg}
    extra = 0 if dataset.e_dev is None else int(dataset.e_dev.shape[1])
    return {"out_dim": dataset.label_dim, "extra_dim": extra, "image_size": list(dataset.x_dev.shape[-2:]),
            "heads": heads, **model_cfg}


def shared_inputs(preps: list[Prepared]) -> torch.Tensor:
    """Members of a group share one dataset, so their standardized inputs are one tensor."""
    x = preps[0].x
    if any(not torch.equal(p.x, x) for p in preps[1:]):
        raise ValueError("models stacked in one group must share their training inputs")
    return x


def stackable(mcfg: dict, stacked: bool) -> bool:
    return stacked and mcfg.get("kind", "mlp") == "mlp"
