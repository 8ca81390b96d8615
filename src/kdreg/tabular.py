"""Bring your own regression data: a CSV, Parquet or NPZ table as a kdreg dataset.

params.yaml:

    datasets:
      housing:                       # any name: outputs are results/metrics/housing.json, ...
        enabled: true
        kind: table
        path: data/raw/housing.csv   # .csv | .parquet | .npz (one array per column)
        target: [price]              # one or more label columns
        features: null               # null: every other numeric column
        split_column: null           # or a column holding train | val | test per row
        test_fraction: 0.2           # random split by data_seed when split_column is null
        val_fraction: 0.2            # of the rows that are not test

Feature standardization is fitted on the training split only (by the trainer). Errors name the file, the column
and the row.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from kdreg.data import Dataset
from kdreg.seeding import rng

SPLITS = ("train", "val", "test")


def read_table(path) -> pd.DataFrame:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such data file; fix datasets.<name>.path in params.yaml")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return pd.read_csv(path)
        if suffix == ".parquet":
            return pd.read_parquet(path)
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                cols = {k: z[k] for k in z.files}
            bad = [k for k, v in cols.items() if v.ndim != 1]
            if bad:
                raise ValueError(f"{path}: arrays {bad} are not 1-D; store one 1-D array per column")
            return pd.DataFrame(cols)
    except (ValueError, OSError, pd.errors.ParserError) as err:
        raise ValueError(f"{path} could not be read as {suffix[1:]} ({err})") from None
    raise ValueError(f"{path}: unsupported file type {suffix!r}; use .csv, .parquet or .npz")


def _numeric(df: pd.DataFrame, cols: list[str], path) -> np.ndarray:
    out = np.empty((len(df), len(cols)), dtype=np.float64)
    for j, c in enumerate(cols):
        values = pd.to_numeric(df[c], errors="coerce")
        bad = values.isna() & df[c].notna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise ValueError(f"{path}: column {c!r} holds a non-numeric value {df[c].iloc[row]!r} at row {row} "
                             f"(0-based, header excluded; {int(bad.sum())} such rows); fix or drop them")
        out[:, j] = values.to_numpy(dtype=np.float64)
    finite = np.isfinite(out)
    if not finite.all():
        rows, cols_bad = np.nonzero(~finite)
        raise ValueError(f"{path}: {int((~finite).sum())} missing, NaN or infinite values, first in column "
                         f"{cols[cols_bad[0]]!r} at row {int(rows[0])} (0-based); fill or drop those rows")
    return out


def table_dataset(name: str, cfg: dict) -> Dataset:
    """Build the dataset ``name`` from its params section ``cfg`` (see the module docstring)."""
    path = cfg["path"]
    df = read_table(path)
    targets = list(cfg["target"]) if isinstance(cfg["target"], (list, tuple)) else [cfg["target"]]
    split_col = cfg.get("split_column")
    missing = [c for c in targets + list(cfg.get("features") or []) + ([split_col] if split_col else [])
               if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: no column(s) {missing}; the file has {list(df.columns)}")
    if cfg.get("features"):
        features = list(cfg["features"])
    else:
        # Numeric columns, and columns that are mostly numeric: a stray text value in a numeric column is an
        # error to report (with its row), not a reason to drop the column silently.
        features = [c for c in df.columns if c not in targets and c != split_col
                    and (pd.api.types.is_numeric_dtype(df[c])
                         or pd.to_numeric(df[c], errors="coerce").notna().mean() >= 0.5)]
    if not features:
        raise ValueError(f"{path}: no numeric feature columns besides the target {targets}; name them in "
                         "datasets.<name>.features")
    x, y = _numeric(df, features, path).astype(np.float32), _numeric(df, targets, path).astype(np.float32)
    n = len(df)
    if split_col:
        split = df[split_col].astype(str).str.strip().str.lower().to_numpy()
        unknown = sorted(set(split) - set(SPLITS))
        if unknown:
            raise ValueError(f"{path}: column {split_col!r} must hold train, val or test; found {unknown[:5]}")
    else:
        split = np.full(n, "train", dtype=object)
        order = rng(int(cfg.get("data_seed", 0)), "table split").permutation(n)
        n_test = int(round(cfg.get("test_fraction", 0.2) * n))
        n_val = int(round(cfg.get("val_fraction", 0.2) * (n - n_test)))
        split[order[:n_test]] = "test"
        split[order[n_test:n_test + n_val]] = "val"
    counts = {s: int((split == s).sum()) for s in SPLITS}
    if counts["train"] < 10 or counts["val"] < 2 or counts["test"] < 2:
        raise ValueError(f"{path}: {n} rows give splits {counts}; need at least 10 train, 2 val and 2 test rows "
                         "(add rows or change test_fraction / val_fraction)")
    dev = split != "test"
    return Dataset(x_dev=x[dev], y_dev=y[dev], val=(split[dev] == "val"), x_test=x[~dev], y_test=y[~dev],
                   name=name, task="regression")


def default_models(n_features: int) -> tuple[dict, dict]:
    """MLP sizes scaled to the number of features when params give none: a wide teacher, a student about 1/20
    of its size or less."""
    t = int(min(512, max(64, 32 * n_features)))
    s = int(max(4, min(32, n_features)))
    return {"hidden": [t, t, t], "activation": "tanh"}, {"hidden": [s], "activation": "tanh"}
