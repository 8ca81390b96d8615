"""Many small MLPs of one architecture, trained as one model.

The B models' weights are stacked on a leading model axis and evaluated with batched matrix products, so one
optimizer step updates all of them at the cost of a few large kernels instead of B × (layers) small ones. Every
loss in :mod:`kdreg.losses` reduces over samples per model and accepts the leading axis, and Adam is elementwise.
Training the stack therefore follows each model's own trajectory: the same initialization, the same mini-batch
order and the same updates as training it alone, up to float rounding.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from kdreg.models import MLP, TwoHeadOutput, TwoHeadStudent


class StackedMLP(nn.Module):
    """B copies of one MLP architecture (one- or two-headed), initialized from the given models.

    ``forward(x)``: ``x`` is ``(N, in)`` shared by all models or ``(B, N, in)``; returns ``(B, N, D)`` (or a
    :class:`TwoHeadOutput` of two).
    """

    def __init__(self, models: Sequence[nn.Module]):
        super().__init__()
        first = models[0]
        if not all(isinstance(m, (MLP, TwoHeadStudent)) and type(m) is type(first) for m in models):
            raise ValueError("StackedMLP stacks MLPs or two-headed MLP students of one architecture")
        self.two_heads = isinstance(first, TwoHeadStudent)
        acts = [m for m in first.backbone if not isinstance(m, nn.Linear)]
        self.act = acts[0] if acts else nn.Identity()
        # Linear layers in forward order: the backbone's, then the head(s).
        self.names = [name for name, mod in first.named_modules() if isinstance(mod, nn.Linear)]
        per_model = [[mod for mod in m.modules() if isinstance(mod, nn.Linear)] for m in models]
        if any(len(layers) != len(self.names) for layers in per_model):
            raise ValueError("models to stack must share one architecture")
        # (B, in, out) weights and (B, 1, out) biases: x @ W + b is the Linear layer of each model. Registered one
        # by one and also held in plain lists: indexing an nn.ParameterList costs ~0.7 ms a call in torch 2.13.
        self.weights, self.biases = [], []
        for i in range(len(self.names)):
            w = nn.Parameter(torch.stack([layers[i].weight.detach().t() for layers in per_model]).contiguous())
            b = nn.Parameter(torch.stack([layers[i].bias.detach() for layers in per_model]).unsqueeze(1).contiguous())
            self.register_parameter(f"weight{i}", w)
            self.register_parameter(f"bias{i}", b)
            self.weights.append(w)
            self.biases.append(b)
        self.n_heads = 2 if self.two_heads else 1

    def _apply(self, fn, recurse=True):
        # .to(device) may replace the Parameter objects: refresh the plain lists.
        super()._apply(fn, recurse)
        self.weights = [getattr(self, f"weight{i}") for i in range(len(self.names))]
        self.biases = [getattr(self, f"bias{i}") for i in range(len(self.names))]
        return self

    @property
    def n_models(self) -> int:
        return self.weights[0].shape[0]

    @staticmethod
    def _linear(h: Tensor, w: Tensor, b: Tensor) -> Tensor:
        if h.dim() == 2:  # shared input (N, in): broadcast to every model
            return torch.matmul(h, w) + b
        return torch.baddbmm(b, h, w)

    def forward(self, x: Tensor):
        n_backbone = len(self.names) - self.n_heads
        h = x
        for i in range(n_backbone):
            h = self.act(self._linear(h, self.weights[i], self.biases[i]))
        outs = [self._linear(h, self.weights[i], self.biases[i]) for i in range(n_backbone, len(self.names))]
        return TwoHeadOutput(*outs) if self.two_heads else outs[0]

    def state_dicts(self) -> list[dict[str, Tensor]]:
        """Each model's state dict, loadable into the single model that ``create_model`` builds."""
        out = []
        for b in range(self.n_models):
            state = {}
            for name, w, bias in zip(self.names, self.weights, self.biases):
                state[f"{name}.weight"] = w[b].detach().t().contiguous().clone()
                state[f"{name}.bias"] = bias[b, 0].detach().clone()
            out.append(state)
        return out
