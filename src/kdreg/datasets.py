"""The dataset kinds, in one table that the workflow, the params check, ``kdreg check``, ``make-data`` and the
aggregation read: how a kind is built, its units (leave-one-person-out folds), its task and headline metric,
whether it needs a prepared file, and the quick check of its source run before any job.

A params entry's kind is its name for the built-in datasets (``sinusoid``, ``mpiigaze``, ``multipie``,
``digits``) and its ``kind:`` field otherwise (``table``, ``images``). Adding a kind: one entry here, its builder, its schema section.
"""
from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from typing import Callable

from kdreg.data import Dataset


@dataclass(frozen=True)
class Kind:
    name: str
    task: str                        # regression | gaze | headpose: which metrics a run reports
    metric: str                      # the headline metric of tables, figures and metrics keys
    builder: Callable[[str, dict, str | None], Dataset]  # (unit, settings, prepared file) -> Dataset
    folds: Callable[[dict], list[str]] | None = None  # units held out one at a time
    prepared: tuple[str, ...] = ()   # built from one prepared file, made with these settings (data/{kind}/prepared-*)
    curves: bool = False             # 1-D input and label: the fitted curves can be drawn
    images: bool = False             # image inputs: read by image models (lenet, resnet_preact), never an MLP
    source_check: str | None = None  # "module:function(name, cfg) -> [problems]", run before any job
    report: str | None = None        # "module:function(cfg, root) -> (lines, problems)": kdreg check's deeper look

    def build(self, unit: str, cfg: dict, prepared: str | None = None) -> Dataset:
        if self.prepared and not prepared:
            raise ValueError(f"make-data for {unit} needs --prepared (the file its preparation step writes)")
        return self.builder(unit, cfg, prepared)

    def problems(self, name: str, cfg: dict) -> list[str]:
        """What stops this dataset's source from being used, found cheaply: a missing or incomplete copy."""
        return _resolve(self.source_check)(name, cfg) if self.source_check else []

    def source_report(self, cfg: dict, root) -> tuple[list[str], int]:
        return _resolve(self.report)(cfg, root) if self.report else ([], 0)


def _resolve(spec: str):
    module, function = spec.split(":")
    return getattr(import_module(module), function)


def _settings(cfg: dict, **names) -> dict:
    """The settings present in ``cfg`` under the builder's argument names (absent ones keep its defaults)."""
    return {arg: cfg[key] for arg, key in names.items() if key in cfg}


def _sinusoid(unit: str, cfg: dict, prepared) -> Dataset:
    from kdreg.data import make_sinusoid
    return make_sinusoid(**_settings(cfg, n_train="n_train", n_test="n_test", val_fraction="val_fraction",
                                     seed="data_seed"))


def sinusoid_problems(name: str, cfg: dict) -> list[str]:
    """The sinusoid's splits follow from its settings alone, so a split its jobs would refuse is said here: a
    validation split of none or all of n_train, or too few training samples for the teacher's cross-fit folds."""
    import inspect

    from kdreg.data import make_sinusoid
    from kdreg.rules import folds_problem, validation_problem
    defaults = {k: p.default for k, p in inspect.signature(make_sinusoid).parameters.items()}
    s = {**defaults, **_settings(cfg, n_train="n_train", val_fraction="val_fraction")}
    n, fraction = int(s["n_train"]), float(s["val_fraction"])
    if problem := validation_problem(n, fraction):
        return [f"datasets.{name}.val_fraction: {problem} (n_train, of which round({fraction} x {n}) = "
                f"{round(fraction * n)} would validate); choose a val_fraction that leaves both the training and "
                f"the validation split at least one sample, or raise datasets.{name}.n_train"]
    teacher, n_train = cfg.get("teacher") or {}, n - round(fraction * n)
    folds = {"cross_fit": teacher.get("cross_fit", 1),
             "gbdt.cross_fit": (teacher.get("gbdt") or {}).get("cross_fit", 1)}  # the trees' own folds
    for key, k in folds.items():
        if problem := folds_problem(n_train, int(k)):
            return [f"datasets.{name}.teacher.{key}: {problem} (n_train {n} less the validation split; each of "
                    f"the {k} folds needs at least 2); set {key} to at most {n_train // 2}, or raise "
                    f"datasets.{name}.n_train"]
    return []


def _table(unit: str, cfg: dict, prepared) -> Dataset:
    from kdreg.tabular import table_dataset
    return table_dataset(unit, cfg)


def _gaze_fold(unit: str, cfg: dict, prepared) -> Dataset:
    from kdreg.mpiigaze import fold_dataset
    return fold_dataset(prepared, unit.split(".", 1)[1], **_settings(cfg, val_fraction="val_fraction",
                                                                     seed="data_seed"))


def _headpose(unit: str, cfg: dict, prepared) -> Dataset:
    from kdreg.multipie import headpose_dataset
    return headpose_dataset(prepared, **_settings(cfg, test_fraction="test_fraction", val_fraction="val_fraction",
                                                  seed="data_seed"))


def _images(unit: str, cfg: dict, prepared) -> Dataset:
    from kdreg.images import image_dataset, read_image_npz
    return image_dataset(read_image_npz(cfg["path"]), cfg, unit)


def _digits(unit: str, cfg: dict, prepared) -> Dataset:
    from kdreg.images import digits_dataset
    return digits_dataset(cfg)


def _gaze_folds(cfg: dict) -> list[str]:
    from kdreg.mpiigaze import PEOPLE
    return list(cfg.get("folds") or PEOPLE)


KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("sinusoid", "regression", "rmse", _sinusoid, curves=True, source_check="kdreg.datasets:sinusoid_problems"),
    Kind("table", "regression", "rmse", _table, source_check="kdreg.tabular:validate_table"),
    Kind("mpiigaze", "gaze", "angular_deg", _gaze_fold, folds=_gaze_folds, prepared=("people", "per_person"),
         images=True, source_check="kdreg.mpiigaze:source_problems", report="kdreg.mpiigaze:source_report"),
    Kind("multipie", "headpose", "mae", _headpose, prepared=("image_size", "crop"), images=True,
         source_check="kdreg.multipie:source_problems"),
    Kind("images", "regression", "rmse", _images, images=True, source_check="kdreg.images:images_file_problems"),
    Kind("digits", "rotation", "nrmse", _digits, images=True),
)}


def kind_of(name: str, cfg: dict) -> Kind:
    """The kind of params entry ``datasets.<name>`` (``cfg``), or of a unit ``name.fold``."""
    base = name.split(".", 1)[0]
    key = base if base in KINDS and base not in ("table", "images") else cfg.get("kind", base)
    if key not in KINDS:
        raise ValueError(f"datasets.{base}: unknown dataset kind {key!r}; known: {', '.join(KINDS)}")
    return KINDS[key]


def build_dataset(unit: str, cfg: dict, prepared: str | None = None) -> Dataset:
    """``unit``: a dataset name, or ``mpiigaze.pXX`` for one fold; ``cfg``: its settings
    (:func:`kdreg.layout.data_config`); ``prepared``: the prepared file of a real dataset."""
    return kind_of(unit, cfg).build(unit, cfg, prepared)
