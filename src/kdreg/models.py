"""Teacher and student networks, and the two-headed student of Takamoto et al. (MIPR 2020)."""
from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
from torch import Tensor, nn

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU}


class TwoHeadOutput(NamedTuple):
    """The two outputs of :class:`TwoHeadStudent`, each ``(N, label_dim)``."""

    label: Tensor    # estimates the (noisy) training labels
    teacher: Tensor  # estimates the teacher's output


def mlp_backbone(in_dim: int, hidden: Sequence[int], activation: str = "tanh") -> nn.Sequential:
    """Linear + activation layers ``in_dim -> hidden[0] -> ... -> hidden[-1]``, no output layer."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; choose one of {sorted(ACTIVATIONS)}")
    if not hidden:
        raise ValueError("an MLP needs at least one hidden layer")
    layers: list[nn.Module] = []
    for width_in, width_out in zip([in_dim, *hidden[:-1]], hidden):
        layers += [nn.Linear(width_in, width_out), ACTIVATIONS[activation]()]
    return nn.Sequential(*layers)


class MLP(nn.Module):
    """A one-headed regressor: an MLP backbone and a linear head. ``(N, in_dim) -> (N, out_dim)``."""

    def __init__(self, in_dim: int, hidden: Sequence[int], out_dim: int, activation: str = "tanh"):
        super().__init__()
        self.backbone = mlp_backbone(in_dim, hidden, activation)
        self.head = nn.Linear(hidden[-1], out_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.backbone(x))


class TwoHeadStudent(nn.Module):
    """A shared backbone and two linear heads of the label's dimension.

    ``backbone`` is any module mapping the inputs to features ``(N, feature_dim)``; a user's own network works as
    long as ``feature_dim`` is given (or the backbone exposes ``out_features``). ``forward`` passes every input
    through to the backbone, so multi-input backbones (image + head pose) work unchanged.
    """

    def __init__(self, backbone: nn.Module, label_dim: int, feature_dim: int | None = None):
        super().__init__()
        feature_dim = feature_dim if feature_dim is not None else getattr(backbone, "out_features", None)
        if feature_dim is None:
            raise ValueError("TwoHeadStudent needs feature_dim: the width of the backbone's output features")
        self.backbone = backbone
        self.label_head = nn.Linear(feature_dim, label_dim)
        self.teacher_head = nn.Linear(feature_dim, label_dim)

    def forward(self, *inputs: Tensor) -> TwoHeadOutput:
        z = self.backbone(*inputs)
        return TwoHeadOutput(self.label_head(z), self.teacher_head(z))


def select_head(out, head: str = "label") -> Tensor:
    """The prediction used for a headline metric: ``label``, ``teacher`` or their ``mean``."""
    if not isinstance(out, TwoHeadOutput):
        return out
    if head == "label":
        return out.label
    if head == "teacher":
        return out.teacher
    if head == "mean":
        return (out.label + out.teacher) / 2
    raise ValueError(f"predict_head must be label, teacher or mean, got {head!r}")


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def create_model(config: dict) -> nn.Module:
    """Build a network from a config such as
    ``{"kind": "mlp", "in_dim": 1, "out_dim": 1, "hidden": [16, 16], "activation": "tanh", "heads": 2}``.

    ``heads: 2`` wraps the backbone in :class:`TwoHeadStudent`.
    """
    kind = config.get("kind", "mlp")
    heads = config.get("heads", 1)
    if heads not in (1, 2):
        raise ValueError(f"heads must be 1 or 2, got {heads!r}")
    if kind in ("lenet", "resnet_preact"):
        from kdreg.cnn import create_image_model
        return create_image_model(config)
    if kind != "mlp":
        raise ValueError(f"unknown model kind {kind!r}; known: mlp, lenet, resnet_preact")
    for key in ("in_dim", "out_dim", "hidden"):
        if key not in config:
            raise ValueError(f"model config lacks {key!r}")
    hidden = list(config["hidden"])
    activation = config.get("activation", "tanh")
    if heads == 2:
        return TwoHeadStudent(mlp_backbone(config["in_dim"], hidden, activation), config["out_dim"], hidden[-1])
    return MLP(config["in_dim"], hidden, config["out_dim"], activation)


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when present, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but CUDA is not available here; use device: auto or cpu")
    return device
