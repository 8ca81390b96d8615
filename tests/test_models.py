import pytest
import torch
from torch import nn

from kdreg.models import MLP, TwoHeadOutput, TwoHeadStudent, count_parameters, create_model, select_head


class TinyConv(nn.Module):
    """A user's own backbone: images (N, 1, 8, 8) → features (N, 12)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3)
        self.pool = nn.AdaptiveAvgPool2d(2)

    def forward(self, x):
        return self.pool(torch.relu(self.conv(x))).flatten(1)


def test_two_head_student_wraps_a_custom_backbone():
    student = TwoHeadStudent(TinyConv(), label_dim=2, feature_dim=12)
    x = torch.randn(5, 1, 8, 8)
    out = student(x)
    assert isinstance(out, TwoHeadOutput)
    assert out.label.shape == (5, 2) and out.teacher.shape == (5, 2)
    # each head gets gradient only from its own output, the backbone from both
    out.label.sum().backward()
    assert student.teacher_head.weight.grad is None or student.teacher_head.weight.grad.abs().sum() == 0
    assert student.label_head.weight.grad.abs().sum() > 0
    conv_grad_label = student.backbone.conv.weight.grad.clone()
    student.zero_grad()
    student(x).teacher.sum().backward()
    assert student.backbone.conv.weight.grad.abs().sum() > 0
    assert not torch.allclose(conv_grad_label, student.backbone.conv.weight.grad)


def test_two_head_student_infers_feature_dim_and_passes_several_inputs():
    class TwoInputs(nn.Module):
        out_features = 6

        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 5)

        def forward(self, x, pose):
            return torch.cat([self.lin(x), pose[:, :1]], dim=1)

    student = TwoHeadStudent(TwoInputs(), label_dim=3)
    out = student(torch.randn(2, 4), torch.randn(2, 2))
    assert out.label.shape == (2, 3)


def test_two_head_student_without_feature_dim_says_how_to_fix():
    with pytest.raises(ValueError, match="feature_dim"):
        TwoHeadStudent(TinyConv(), label_dim=2)


def test_create_model_mlp_and_two_heads():
    one = create_model({"kind": "mlp", "in_dim": 1, "out_dim": 1, "hidden": [4], "activation": "tanh"})
    two = create_model({"kind": "mlp", "in_dim": 1, "out_dim": 1, "hidden": [4], "activation": "tanh", "heads": 2})
    assert isinstance(one, MLP) and isinstance(two, TwoHeadStudent)
    assert count_parameters(one) == 1 * 4 + 4 + 4 * 1 + 1
    assert count_parameters(two) == count_parameters(one) + 5
    x = torch.randn(3, 1)
    assert one(x).shape == (3, 1)
    out = two(x)
    assert torch.allclose(select_head(out, "mean"), (out.label + out.teacher) / 2)
    assert select_head(out, "teacher") is out.teacher


def test_create_model_errors_name_the_problem():
    with pytest.raises(ValueError, match="kind"):
        create_model({"kind": "transformer"})
    with pytest.raises(ValueError, match="activation"):
        create_model({"kind": "mlp", "in_dim": 1, "out_dim": 1, "hidden": [4], "activation": "swishy"})
    with pytest.raises(ValueError, match="head"):
        select_head(TwoHeadOutput(torch.zeros(1, 1), torch.zeros(1, 1)), "median")
