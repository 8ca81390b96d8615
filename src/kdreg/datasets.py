"""One entry point from a unit name and its params section to a :class:`~kdreg.data.Dataset`, shared by the
``make-data`` command and the benchmarks."""
from __future__ import annotations

from kdreg.data import Dataset


def build_dataset(unit: str, cfg: dict, prepared: str | None = None) -> Dataset:
    """``unit``: ``sinusoid``, an MPIIGaze fold ``mpiigaze.pXX``, ``multipie``, or any ``kind: table`` entry;
    ``cfg``: its settings (:func:`kdreg.layout.data_config`); ``prepared``: the prepared file of a real dataset."""
    if unit == "sinusoid":
        from kdreg.data import make_sinusoid
        return make_sinusoid(cfg.get("n_train", 1000), cfg.get("n_test", 1000), cfg.get("val_fraction", 0.2),
                             cfg.get("data_seed", 0))
    if unit.startswith("mpiigaze.") or unit == "multipie":
        if not prepared:
            raise ValueError(f"make-data for {unit} needs --prepared (the file its preparation step writes)")
        if unit == "multipie":
            from kdreg.multipie import headpose_dataset
            return headpose_dataset(prepared, cfg.get("test_fraction", 0.2), cfg.get("val_fraction", 0.1),
                                    cfg.get("data_seed", 0))
        from kdreg.mpiigaze import fold_dataset
        return fold_dataset(prepared, unit.split(".", 1)[1], cfg.get("val_fraction", 0.1), cfg.get("data_seed", 0))
    if cfg.get("kind") == "table":
        from kdreg.tabular import table_dataset
        return table_dataset(unit, cfg)
    raise ValueError(f"make-data knows 'sinusoid', MPIIGaze folds 'mpiigaze.pXX', 'multipie' and datasets of "
                     f"kind: table; got {unit!r}")
