"""Image models train channels-last (kdreg.cnn.as_images) for speed: the same training as the contiguous layout up
to float rounding, the same parameters' layout, checkpoints and predictions."""
import numpy as np
import pytest
import torch

from kdreg import cnn
from kdreg.cnn import as_images, create_image_model
from kdreg.io import load_checkpoint, save_checkpoint
from kdreg.losses import MSELoss
from kdreg.trainer import Inputs, TrainSettings, fit, predict

CL = torch.channels_last
CONFIGS = [  # (model config, extra inputs): the digits shapes (24×24, none) and the MPIIGaze ones (head pose)
    ({"kind": "lenet", "image_size": [24, 24], "extra_dim": 0, "width": 64}, 0),
    ({"kind": "resnet_preact", "depth": 8, "base": 8, "extra_dim": 0}, 0),
    ({"kind": "lenet", "image_size": [20, 28], "extra_dim": 2, "width": 32, "heads": 2}, 2),
]
IDS = ["lenet", "resnet", "lenet_pose_two_heads"]
LR = 1e-3


def _data(cfg, extra, n=48):
    g = torch.Generator().manual_seed(0)
    h, w = cfg.get("image_size", [16, 16])
    x = torch.randint(0, 256, (n, h, w), dtype=torch.uint8, generator=g)
    x[:, :4] = 0  # a blank border, as digits have: ties in the max-pools take the same gradient route
    if extra:
        x = Inputs(x, torch.randn(n, extra, generator=g))
    return x, torch.randn(n, 2, generator=g)


def _trained(cfg, extra, memory_format, monkeypatch, dtype=torch.float32):
    """A model trained 2 epochs of 3 Adam steps in ``memory_format``; every conv's input is recorded."""
    monkeypatch.setattr(cnn, "IMAGE_MEMORY_FORMAT", memory_format)
    x, y = _data(cfg, extra)
    if dtype == torch.float64:  # float images (N, 1, H, W), as as_images passes them on
        images = (x.tensors[0] if extra else x).to(dtype).unsqueeze(1) / 255
        x, y = (Inputs(images, x.tensors[1].to(dtype)) if extra else images), y.to(dtype)
    torch.manual_seed(3)
    model = create_image_model(cfg).to(dtype)
    seen = []
    for conv in (m for m in model.modules() if isinstance(m, torch.nn.Conv2d)):
        conv.register_forward_hook(lambda mod, inputs, out: seen.append(inputs[0]))
    fit(model, MSELoss(), x, y, None, TrainSettings(epochs=2, lr=LR, batch_size=16), seed=5)
    return model, x, seen


def _layouts_ran(seen, memory_format):
    return bool(seen) and all(h.is_contiguous(memory_format=memory_format) for h in seen)


@pytest.mark.parametrize("cfg, extra", CONFIGS, ids=IDS)
def test_channels_last_training_is_the_same_update_rule(cfg, extra, monkeypatch):
    # float64: no rounding difference can flip a ReLU or a max-pool tie, so equal init, batch order, layer
    # semantics (pooling, flatten order) and Adam updates must give equal parameters to 1e-10.
    fast, _, seen = _trained(cfg, extra, CL, monkeypatch, torch.float64)
    assert _layouts_ran(seen, CL)
    slow, _, seen = _trained(cfg, extra, torch.contiguous_format, monkeypatch, torch.float64)
    assert _layouts_ran(seen, torch.contiguous_format)
    for (name, a), b in zip(fast.state_dict().items(), slow.state_dict().values()):
        assert a.is_contiguous(), name  # parameters and buffers keep their layout: optimizer state, checkpoints
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-10, msg=name)


@pytest.mark.parametrize("cfg, extra", CONFIGS, ids=IDS)
def test_channels_last_float32_training_matches_the_contiguous_path(cfg, extra, monkeypatch):
    # float32 runs oneDNN's NHWC kernels, which round differently. Weights agree to ~1e-6, except where rounding
    # flips a ReLU of a ~1e-6 value (BN outputs crowd around 0): that sample's gradient moves, and Adam's early
    # steps move a weight by ~lr whatever its gradient's size. Which kernels run, and so whether a flip happens,
    # depends on the CPU and thread count (the ResNet case on 1 thread, 2-core AVX2: one flip, 1.8e-3; on 2
    # threads: 5e-7). So: within two Adam steps; the float64 test above checks the update rule to 1e-10.
    fast, x, seen = _trained(cfg, extra, CL, monkeypatch)
    assert _layouts_ran(seen, CL)
    slow, _, _ = _trained(cfg, extra, torch.contiguous_format, monkeypatch)
    for (name, a), b in zip(fast.state_dict().items(), slow.state_dict().values()):
        if a.is_floating_point():
            assert (a - b).abs().max() <= 2 * LR, name

    # predictions of one model in either layout: equal to float rounding
    monkeypatch.setattr(cnn, "IMAGE_MEMORY_FORMAT", CL)
    p_fast = predict(fast, x)
    monkeypatch.setattr(cnn, "IMAGE_MEMORY_FORMAT", torch.contiguous_format)
    p_old_layout = predict(fast, x)
    for a, b in zip(*((p.label, p.teacher) if extra else (p,) for p in (p_fast, p_old_layout))):
        np.testing.assert_allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("cfg, extra", CONFIGS, ids=IDS)
def test_state_dict_round_trips_through_a_checkpoint(cfg, extra, tmp_path, monkeypatch):
    model, x, _ = _trained(cfg, extra, CL, monkeypatch)
    save_checkpoint(tmp_path / "model.pt", {"state": model.state_dict()})
    fresh = create_image_model(cfg)
    fresh.load_state_dict(load_checkpoint(tmp_path / "model.pt")["state"])
    for a, b in zip(model.state_dict().values(), fresh.state_dict().values()):
        assert torch.equal(a, b)
    for a, b in zip(*((p.label, p.teacher) if extra else (p,) for p in (predict(model, x), predict(fresh, x)))):
        np.testing.assert_array_equal(a, b)


def test_channels_last_parameters_are_saved_in_their_logical_order(tmp_path):
    # A model someone converts with .to(memory_format=channels_last) has NHWC-strided weights: the checkpoint
    # stores them contiguous, with the same bytes as the contiguous model's, and they load into a fresh model.
    torch.manual_seed(0)
    model = create_image_model(CONFIGS[1][0])
    state = {k: v.clone() for k, v in model.state_dict().items()}
    model.to(memory_format=CL)
    assert not model.backbone.blocks[0].conv1.weight.is_contiguous()
    save_checkpoint(tmp_path / "cl.pt", {"state": model.state_dict()})
    save_checkpoint(tmp_path / "plain.pt", {"state": state})
    assert (tmp_path / "cl.pt").read_bytes() == (tmp_path / "plain.pt").read_bytes()
    fresh = create_image_model(CONFIGS[1][0])
    fresh.load_state_dict(load_checkpoint(tmp_path / "cl.pt")["state"])
    for k, v in fresh.state_dict().items():
        assert torch.equal(v, state[k]), k


_FAULTS_PER_STEP = """
import resource, sys, torch
from torch.nn import functional as F
if sys.argv[1] == "keep":
    from kdreg.memory import keep_freed_memory
    keep_freed_memory()
from kdreg.cnn import create_image_model
torch.set_num_threads(1)
torch.manual_seed(0)
model = create_image_model({"kind": "lenet", "image_size": [24, 24], "extra_dim": 0})
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
x, y = torch.randint(0, 256, (64, 24, 24), dtype=torch.uint8), torch.randn(64, 2)
def step():
    opt.zero_grad(set_to_none=True)
    F.mse_loss(model(x), y).backward()
    opt.step()
for _ in range(10):
    step()
start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(30):
    step()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start) / 30)
"""


@pytest.mark.skipif(not __import__("platform").libc_ver()[0] == "glibc", reason="glibc's allocator only")
def test_kept_freed_memory_stops_a_lenet_step_page_faulting():
    """Every kdreg command keeps freed memory in the process (kdreg.memory): a LeNet step at batch 64 (2 MB
    activations) then reuses its blocks instead of faulting fresh zeroed pages in, ~1,300 a step by default on
    the machine the benchmarks ran on (benchmarks/README.md, CNN throughput)."""
    import subprocess
    import sys
    faults = {how: float(subprocess.run([sys.executable, "-c", _FAULTS_PER_STEP, how], capture_output=True,
                                        text=True, check=True).stdout) for how in ("default", "keep")}
    pages_of_first_activation = 64 * 20 * 20 * 20 * 4 // 4096      # conv1's output: 2 MB, 500 pages
    assert faults["keep"] < 0.05 * pages_of_first_activation, faults
    # not compared with the default: glibc's own threshold sometimes adapts after the warm-up steps, and then the
    # default faults little too (seen in a full test run: 3.7 a step by default, 15.9 kept, both far below 500)
