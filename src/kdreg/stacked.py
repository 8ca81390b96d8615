"""Many small MLPs of one architecture, trained as one model.

The B models' weights are stacked on a leading model axis and evaluated with batched matrix products, so one
optimizer step updates all of them at the cost of a few large kernels instead of B × (layers) small ones. Every
loss in :mod:`kdreg.losses` reduces over samples per model and accepts the leading axis, and Adam is elementwise.
Training the stack therefore follows each model's own trajectory: the same initialization, the same mini-batch
order and the same updates as training it alone, up to float rounding.

With tanh or ReLU the forward and backward passes are written out (:class:`_StackedForward`) rather than left to
autograd, so each product uses the cheapest kernel for its shape: a layer with one input or one output is an
elementwise product (a batched matmul with an inner or outer size of 1 costs ~10× more on the CPU: 4.3 vs 0.09 ms
for the teacher's first layer, 10 × 800 samples × 128), wider layers are batched matmuls, and the activation's
gradient comes from its saved output.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from kdreg.models import MLP, Tanh, TwoHeadOutput, TwoHeadStudent

# Activations whose derivative is a function of their output, so the written-out backward needs only the outputs.
_FUSED = {Tanh: "tanh", nn.Tanh: "tanh", nn.ReLU: "relu"}


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
        self.fused = _FUSED.get(type(self.act))
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
        if self.fused is not None:
            params = [t for pair in zip(self.weights, self.biases) for t in pair]
            outs = _StackedForward.apply(x, self.fused, n_backbone, *params)
            return TwoHeadOutput(*outs) if self.two_heads else outs[0]
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


def _linear_forward(h: Tensor, w: Tensor, b: Tensor, scale: float = 1.0) -> Tensor:
    """``scale · (wᵀ h + b)`` per model, features first: ``h`` (1 or B, in, N), ``w`` (B, in, out), ``b``
    (B, 1, out) -> (B, out, N). A power-of-two ``scale`` is exact and free here; it saves tanh a pass."""
    wt, bt = w.transpose(1, 2), b.transpose(1, 2)               # (B, out, in), (B, out, 1)
    if w.shape[1] == 1:                       # one input: an outer product
        return torch.addcmul(bt * scale, wt, h, value=scale)
    if w.shape[2] == 1:                       # one output: a weighted sum of the input rows
        z = (w * h).sum(1, keepdim=True) + bt
        return z.mul_(scale) if scale != 1 else z
    return torch.baddbmm(bt, wt, h.expand(w.shape[0], *h.shape[1:]), beta=scale, alpha=scale)


def _linear_backward(h: Tensor, w: Tensor, g: Tensor, need_input: bool):
    """Gradients of :func:`_linear_forward` for the output gradient ``g`` (B, out, N): (dh or None, dw, db)."""
    db = g.sum(2, keepdim=True).transpose(1, 2)                 # (B, 1, out)
    if w.shape[1] == 1:
        dw = (g * h).sum(2).unsqueeze(1)
        dh = (w.transpose(1, 2) * g).sum(1, keepdim=True) if need_input else None
    elif w.shape[2] == 1:
        dw = (h * g).sum(2, keepdim=True)
        dh = w * g if need_input else None
    else:
        dw = torch.bmm(h.expand(w.shape[0], *h.shape[1:]), g.transpose(1, 2))
        dh = torch.bmm(w, g) if need_input else None
    return dh, dw, db


class _StackedForward(torch.autograd.Function):
    """The stack's forward pass and its written-out backward: backbone layers with tanh or ReLU, then the heads.

    ``params``: weight, bias of each layer in forward order; returns one ``(B, N, out)`` per head. Inside, the
    activations are features first, ``(B, features, N)``: the samples are the contiguous axis, so the elementwise
    work on narrow layers (the paper's 4-unit student) runs in long vector loops, not loops of 4.
    """

    @staticmethod
    def forward(ctx, x, activation: str, n_backbone: int, *params):
        weights, biases = params[0::2], params[1::2]
        xt = x.t().unsqueeze(0) if x.dim() == 2 else x.transpose(1, 2)     # (1 or B, in, N)
        hs = [xt.contiguous()]                 # each layer's input; the backbone's are activation outputs
        doubled = activation == "tanh" and not x.is_cuda   # tanh(z) = 2·sigmoid(2z) − 1 (kdreg.models.fast_tanh)
        for w, b in zip(weights[:n_backbone], biases[:n_backbone]):
            z = _linear_forward(hs[-1], w, b, 2.0 if doubled else 1.0)
            if activation == "relu":
                hs.append(z.clamp_(min=0))
            else:
                hs.append(torch.sigmoid(z, out=z).mul_(2).sub_(1) if doubled else z.tanh_())
        outs = tuple(_linear_forward(hs[-1], w, b).transpose(1, 2)
                     for w, b in zip(weights[n_backbone:], biases[n_backbone:]))
        ctx.activation, ctx.n_backbone = activation, n_backbone
        ctx.save_for_backward(*hs, *weights)
        return outs

    @staticmethod
    def backward(ctx, *grads):
        n_backbone = ctx.n_backbone
        saved = ctx.saved_tensors
        hs, weights = saved[:n_backbone + 1], saved[n_backbone + 1:]
        dparams = [None] * (2 * len(weights))
        dh = None
        for i, g in zip(range(n_backbone, len(weights)), grads):   # the heads share the last backbone output
            dhi, dparams[2 * i], dparams[2 * i + 1] = _linear_backward(hs[-1], weights[i], g.transpose(1, 2),
                                                                      n_backbone > 0)
            dh = dhi if dh is None else dh + dhi
        for i in range(n_backbone - 1, -1, -1):
            y = hs[i + 1]
            g = torch.ops.aten.tanh_backward(dh, y) if ctx.activation == "tanh" else dh * (y > 0)
            dh, dparams[2 * i], dparams[2 * i + 1] = _linear_backward(hs[i], weights[i], g, i > 0)
        return (None, None, None, *dparams)
