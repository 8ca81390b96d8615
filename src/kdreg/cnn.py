"""Image networks for gaze (MPIIGaze, 36×60 grayscale eyes) and head pose: a LeNet student and a pre-activation
ResNet teacher. Each is a backbone that ends with the extra input (head pose) joined to the image features, so
one linear head (:class:`ImageRegressor`) or two (:class:`~kdreg.heads.TwoHeadStudent`) sit on top.

Shapes: images ``(N, 1, H, W)`` in [0, 1]; extra inputs ``(N, E)`` (E = 2 for head pose, 0 for none).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from kdreg.heads import TwoHeadStudent
from kdreg.rules import resnet_depth_problem

# The layout image batches (and so every activation after them) take: channels-last, see as_images.
# benchmarks/cnn_throughput.py sets torch.contiguous_format to time the layout kdreg used before.
IMAGE_MEMORY_FORMAT = torch.channels_last


def as_images(x: Tensor) -> Tensor:
    """uint8 ``(N, H, W)`` or float ``(N, 1, H, W)`` → float ``(N, 1, H, W)`` in [0, 1], channels-last: images
    stay uint8 in memory (4× smaller) and are scaled per batch.

    Channels-last (NHWC strides) makes every convolution, pooling and batch norm after it run oneDNN's NHWC
    kernels, and their outputs stay NHWC: LeNet trains ~1.5× faster on a 2-core CPU (benchmarks/README.md). Only
    the float rounding inside the convolutions changes; values, parameters (contiguous) and state dicts do not.
    ``.to``, not ``.contiguous``: with one channel a contiguous tensor already counts as channels-last, but the
    convolution reads the strides, and only ``.to`` rewrites them.
    """
    if x.dtype == torch.uint8:
        x = x.float() / 255.0
    return (x.unsqueeze(1) if x.dim() == 3 else x).to(memory_format=IMAGE_MEMORY_FORMAT)


class LeNetBackbone(nn.Module):
    """conv 20@5×5, max-pool 2, conv 50@5×5, max-pool 2, FC 500, ReLU, join the extra inputs.

    The student of Zhang et al. (CVPR 2015)'s appearance-based gaze estimation, as the specification fixes it.
    """

    def __init__(self, image_size=(36, 60), extra_dim: int = 2, width: int = 500):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 20, 5)
        self.conv2 = nn.Conv2d(20, 50, 5)
        h, w = image_size
        h, w = ((h - 4) // 2 - 4) // 2, ((w - 4) // 2 - 4) // 2
        if h < 1 or w < 1:
            raise ValueError(f"images of {image_size} are too small for LeNet (need at least 16×16)")
        self.fc = nn.Linear(50 * h * w, width)
        self.out_features = width + extra_dim

    def forward(self, x: Tensor, extra: Tensor | None = None) -> Tensor:
        x = F.max_pool2d(self.conv1(as_images(x)), 2)
        x = F.max_pool2d(self.conv2(x), 2)
        x = F.relu(self.fc(x.flatten(1)))
        return x if extra is None else torch.cat([x, extra], dim=1)


class PreactBlock(nn.Module):
    """BN-ReLU-conv3×3, BN-ReLU-conv3×3, plus the (projected) identity: He et al., ECCV 2016."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(c_in), nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn2, self.conv2 = nn.BatchNorm2d(c_out), nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.project = (nn.Conv2d(c_in, c_out, 1, stride, bias=False) if stride != 1 or c_in != c_out else None)

    def forward(self, x: Tensor) -> Tensor:
        h = F.relu(self.bn1(x))
        shortcut = self.project(h) if self.project is not None else x
        h = self.conv1(h)
        h = self.conv2(F.relu(self.bn2(h)))
        return h + shortcut


class ResNetPreactBackbone(nn.Module):
    """Pre-activation ResNet for small images: a 3×3 stem, three stages of ``(depth − 2) / 6`` blocks with
    ``base``, 2·base, 4·base channels (strides 1, 2, 2), BN-ReLU, global average pool, join the extra inputs.
    ``depth`` 8 is ResNet-preact-8 (one block per stage)."""

    def __init__(self, depth: int = 8, base: int = 16, extra_dim: int = 2):
        super().__init__()
        if problem := resnet_depth_problem(depth):
            raise ValueError(problem)
        n = (depth - 2) // 6
        self.stem = nn.Conv2d(1, base, 3, 1, 1, bias=False)
        blocks, c = [], base
        for stage, width in enumerate((base, 2 * base, 4 * base)):
            for i in range(n):
                blocks.append(PreactBlock(c, width, 2 if (stage > 0 and i == 0) else 1))
                c = width
        self.blocks = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(c)
        self.out_features = c + extra_dim

    def forward(self, x: Tensor, extra: Tensor | None = None) -> Tensor:
        x = self.blocks(self.stem(as_images(x)))
        x = F.adaptive_avg_pool2d(F.relu(self.bn(x)), 1).flatten(1)
        return x if extra is None else torch.cat([x, extra], dim=1)


class ImageRegressor(nn.Module):
    """A backbone and one linear head: ``(images, extra) -> (N, out_dim)``."""

    def __init__(self, backbone: nn.Module, out_dim: int):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(backbone.out_features, out_dim)

    def forward(self, x: Tensor, extra: Tensor | None = None) -> Tensor:
        return self.head(self.backbone(x, extra))


BACKBONES = {"lenet": LeNetBackbone, "resnet_preact": ResNetPreactBackbone}


def create_image_model(config: dict) -> nn.Module:
    """``{"kind": "lenet" | "resnet_preact", "out_dim": 2, "extra_dim": 2, "heads": 1 | 2, "depth": 8,
    "image_size": [36, 60]}``."""
    kind = config.get("kind")
    if kind not in BACKBONES:
        raise ValueError(f"unknown image model kind {kind!r}; known: {sorted(BACKBONES)}")
    extra = int(config.get("extra_dim", 2))
    if kind == "lenet":
        backbone = LeNetBackbone(tuple(config.get("image_size", (36, 60))), extra, int(config.get("width", 500)))
    else:
        backbone = ResNetPreactBackbone(int(config.get("depth", 8)), int(config.get("base", 16)), extra)
    out_dim = int(config.get("out_dim", 2))
    if config.get("heads", 1) == 2:
        return TwoHeadStudent(backbone, out_dim)
    return ImageRegressor(backbone, out_dim)


def count_flops(model: nn.Module, *inputs: Tensor) -> int:
    """Forward multiply-adds × 2 of the convolutions and linear layers, per sample."""
    total = 0

    def conv_hook(mod, inp, out):
        nonlocal total
        k = mod.kernel_size[0] * mod.kernel_size[1] * mod.in_channels // mod.groups
        total += 2 * out.numel() * k

    def linear_hook(mod, inp, out):
        nonlocal total
        total += 2 * out.numel() * mod.in_features

    hooks = [m.register_forward_hook(conv_hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    hooks += [m.register_forward_hook(linear_hook) for m in model.modules() if isinstance(m, nn.Linear)]
    with torch.no_grad():
        model.eval()
        model(*inputs)
        model.train()
    for h in hooks:
        h.remove()
    return total // inputs[0].shape[0]
