"""The methods, in one torch-free table that every part of kdreg reads: the Snakefile (which students wait for a
teacher), the config cut (which option sections a run reads), training (heads, targets, label units), aggregation
(baseline and bound of the gap) and the figures. No method name is compared as a string anywhere else.

Adding a method: one entry here, its loss class in :mod:`kdreg.losses`, its options in the params schema.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Method:
    """How one method trains a student.

    ``loss`` names the class in :mod:`kdreg.losses`; a two-headed method's ``loss`` is the multi-task wrapper and
    ``label_loss`` the loss on its label head. ``sections`` are the ``loss_options`` sections of params.yaml it
    reads (a later one overrides an earlier one).
    """

    name: str
    loss: str
    label_loss: str | None = None
    sections: tuple[str, ...] = ()
    uses_teacher: bool = True
    clean_labels: bool = False  # oracle: trains on the clean labels, a bound no real method can reach
    rejects: bool = False       # drops samples (TOR): rejection precision / recall and the rejection figure
    label_units: bool = False   # its threshold is in label units: it needs the label scale of the standardization
    in_fits: bool = False       # drawn in the sinusoid fits figure
    per_fold: bool = False      # shown in the per-fold table of leave-one-person-out datasets
    color: str = "tab:gray"     # its colour in every figure of every dataset

    @property
    def heads(self) -> int:
        return 1 if self.label_loss is None else 2


METHODS: dict[str, Method] = {m.name: m for m in (
    Method("scratch", "MSELoss", uses_teacher=False, in_fits=True, per_fold=True, color="tab:red"),
    Method("oracle", "MSELoss", uses_teacher=False, clean_labels=True, color="tab:gray"),
    Method("kd", "KDLoss", color="tab:olive"),
    Method("kd_mix", "KDMixLoss", sections=("kd_mix",), color="tab:cyan"),
    Method("teacher_bounded", "TeacherBoundedLoss", sections=("teacher_bounded",), color="tab:pink"),
    Method("ail", "AILLoss", sections=("ail",), color="tab:brown"),
    Method("huber", "HuberLoss", sections=("huber",), uses_teacher=False, color="tab:purple"),
    Method("tukey", "TukeyLoss", sections=("tukey",), uses_teacher=False, color="goldenrod"),
    Method("gum", "GUMLoss", sections=("gum",), uses_teacher=False, color="indigo"),
    Method("mixture", "MixtureNLLLoss", sections=("mixture",), uses_teacher=False, color="darkslategray"),
    Method("tor", "TORLoss", sections=("tor",), rejects=True, label_units=True, per_fold=True, color="tab:orange"),
    Method("multitask", "MultiTaskLoss", label_loss="MSELoss", sections=("multitask",), color="tab:green"),
    Method("tor_multitask", "MultiTaskLoss", label_loss="TORLoss", sections=("tor", "multitask", "tor_multitask"),
           rejects=True, label_units=True, in_fits=True, per_fold=True, color="tab:blue"),
)}

# The reference points of every comparison: the error ratio and the gap closed are measured from the baseline
# (the student trained on the noisy labels alone) towards the bound (the student trained on the clean labels).
BASELINE = "scratch"
BOUND = "oracle"
# The teacher's row in every table: trained on the noisy labels, with one of these losses (params: teacher.loss).
TEACHER = "teacher"
TEACHER_COLOR = "black"
TEACHER_LOSSES = {"mse": "scratch", "huber": "huber", "tukey": "tukey", "mixture": "mixture"}


def get_method(name: str) -> Method:
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown loss/method {name!r}; choose one of: {', '.join(METHODS)}") from None


def method_options(name: str, loss_options: dict) -> dict:
    """The options method ``name`` reads from params' ``loss_options``, merged in the order of its sections."""
    opts = {}
    for section in get_method(name).sections:
        opts.update(loss_options.get(section) or {})
    return opts
