"""The two-headed student of Takamoto et al. (MIPR 2020): a shared backbone with one head for the labels and one
for the teacher's output. Its own module, so the MLP and the CNN modules both build on it without importing each
other."""
from __future__ import annotations

from typing import NamedTuple

from torch import Tensor, nn


class TwoHeadOutput(NamedTuple):
    """The two outputs of :class:`TwoHeadStudent`, each ``(N, label_dim)``."""

    label: Tensor    # estimates the (noisy) training labels
    teacher: Tensor  # estimates the teacher's output


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
