"""Bring-your-own data: CSV, Parquet and NPZ tables through the loader and the real pipeline."""
import json

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import shrink, snakemake
from kdreg.tabular import default_models, read_table, table_dataset


def relation(n=600, seed=0) -> pd.DataFrame:
    """A smooth known relation: y = sin(2·a) + 0.5·b² − c, plus a non-numeric id column."""
    r = np.random.default_rng(seed)
    a, b, c = r.uniform(-1.5, 1.5, n), r.uniform(-1, 1, n), r.uniform(-1, 1, n)
    return pd.DataFrame({"id": [f"row{i}" for i in range(n)], "a": a, "b": b, "c": c,
                         "y": np.sin(2 * a) + 0.5 * b ** 2 - c})


def with_value(column, row, value):
    def edit(d):
        d = d.astype({column: object})
        d.loc[row, column] = value
        return d
    return edit


def write(df: pd.DataFrame, path):
    if path.suffix == ".csv":
        df.to_csv(path, index=False)
    elif path.suffix == ".parquet":
        df.to_parquet(path)
    else:
        np.savez(path, **{c: df[c].to_numpy() for c in df.columns if c != "id"})
    return path


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".npz"])
def test_every_format_loads_the_same_dataset(tmp_path, suffix):
    path = write(relation(), tmp_path / f"data{suffix}")
    ds = table_dataset("mine", {"path": str(path), "target": "y", "test_fraction": 0.2, "val_fraction": 0.25})
    assert ds.x_dev.shape == (480, 3) and ds.x_test.shape == (120, 3)  # id (text) is not a feature
    assert ds.val.sum() == 120
    df = relation()
    np.testing.assert_allclose(np.sort(np.concatenate([ds.y_dev, ds.y_test])[:, 0]), np.sort(df.y), rtol=1e-6)


def test_split_column_and_named_features(tmp_path):
    df = relation(100)
    df["part"] = ["test"] * 20 + ["val"] * 20 + ["train"] * 60
    ds = table_dataset("mine", {"path": str(write(df, tmp_path / "d.csv")), "target": ["y"], "features": ["a", "b"],
                                "split_column": "part"})
    assert ds.x_dev.shape == (80, 2) and ds.val.sum() == 20 and len(ds.x_test) == 20
    np.testing.assert_allclose(ds.x_test[:, 0], df.a[:20], rtol=1e-6)


@pytest.mark.parametrize("edit, cfg, message", [
    (None, {"target": "price"}, r"no column\(s\) \['price'\]"),
    (with_value("b", 7, "x"), {"target": "y"}, r"column 'b' holds a non-numeric value 'x' at row 7"),
    (with_value("c", 3, np.nan), {"target": "y"}, r"missing, NaN or infinite values, first in column 'c' at row 3"),
    (lambda d: d.head(8), {"target": "y"}, r"need at least 10 train"),
    (lambda d: d.assign(part="holdout"), {"target": "y", "split_column": "part"}, "train, val or test"),
])
def test_bad_tables_get_messages_naming_column_and_row(tmp_path, edit, cfg, message):
    df = relation(100)
    if edit is not None:
        df = edit(df)
    path = write(df, tmp_path / "d.csv")
    with pytest.raises(ValueError, match=message):
        table_dataset("mine", {"path": str(path), **cfg})


def test_missing_file_and_unknown_type(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such data file"):
        read_table(tmp_path / "nope.csv")
    (tmp_path / "d.xlsx").write_text("x")
    with pytest.raises(ValueError, match="unsupported file type"):
        read_table(tmp_path / "d.xlsx")


def test_default_model_sizes_scale_with_features():
    teacher, student = default_models(3)
    assert teacher["hidden"] == [96, 96, 96] and student["hidden"] == [4]
    assert default_models(50)[0]["hidden"] == [512] * 3 and default_models(50)[1]["hidden"] == [32]


@pytest.mark.slow
def test_own_tables_through_the_pipeline(workdir):
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    params["datasets"]["sinusoid"]["enabled"] = False
    for suffix in (".csv", ".parquet", ".npz"):
        name = "mine_" + suffix[1:]
        write(relation(300), workdir / f"{name}{suffix}")
        params["datasets"][name] = {"enabled": True, "kind": "table", "path": f"{name}{suffix}", "target": "y",
                                    "teacher": {"train": {"epochs": 60, "lr": 0.01, "eval_every": 10}},
                                    "student": {"train": {"epochs": 60, "lr": 0.02}}}
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))
    snakemake(workdir, "all")
    for name in ("mine_csv", "mine_parquet", "mine_npz"):
        metrics = json.loads((workdir / f"results/metrics/{name}.json").read_text())
        assert "p0.3.tor_multitask.rmse_mean" in metrics
        assert (workdir / f"results/figures/{name}_error_vs_noise.png").exists()
        assert (workdir / f"results/tables/{name}.md").exists()
    # the same data in three formats gives the same numbers
    a, b, c = (json.loads((workdir / f"results/metrics/{n}.json").read_text()) for n in ("mine_csv", "mine_parquet", "mine_npz"))
    assert a["p0.3.scratch.rmse_mean"] == pytest.approx(b["p0.3.scratch.rmse_mean"], rel=1e-5)
    assert a["p0.3.scratch.rmse_mean"] == pytest.approx(c["p0.3.scratch.rmse_mean"], rel=1e-5)


def test_missing_table_file_fails_before_any_job(workdir):
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    params["datasets"]["mine"] = {"enabled": True, "kind": "table", "path": "missing.csv", "target": "y"}
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))
    proc = snakemake(workdir, "-n", "all", check=False)
    assert proc.returncode != 0 and "datasets.mine.path: missing.csv does not exist" in proc.stdout + proc.stderr
