"""kdreg: knowledge distillation for regression with noisy labels.

Reproduces Takamoto, Morishita & Imaoka, "An Efficient Method of Training Small Models for Regression Problems
with Knowledge Distillation", IEEE MIPR 2020 (arXiv:2002.12597): the teacher outlier rejection (TOR) loss and the
two-headed student, with the baselines it is compared against.
"""
__version__ = "0.1.0"

from kdreg.losses import METHODS, TORLoss, get_loss  # noqa: E402
from kdreg.models import TwoHeadOutput, TwoHeadStudent, create_model  # noqa: E402
from kdreg.noise import corrupt  # noqa: E402

__all__ = ["METHODS", "TORLoss", "TwoHeadOutput", "TwoHeadStudent", "corrupt", "create_model", "get_loss"]
