"""Mistakes a user can make, each answered with a message naming the problem, the params key or file, and a fix
that works; every test runs the real code path (the table reader, `kdreg check`, the archive check)."""
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import ROOT, shrink, snakemake
from kdreg.check import check
from kdreg.config import device_problem, load_yaml
from kdreg.tabular import table_dataset, validate_table

SCHEMA = "workflow/schemas/params.schema.yaml"


def table(n=40, seed=0) -> pd.DataFrame:
    r = np.random.default_rng(seed)
    return pd.DataFrame({"a": r.normal(size=n), "b": r.normal(size=n), "y": r.normal(size=n)})


def only_problem(path, **cfg) -> str:
    problems = validate_table("mine", {"path": str(path), "target": "y", **cfg})
    assert len(problems) == 1, problems
    with pytest.raises(ValueError) as err:  # the run's own read says the same
        table_dataset("mine", {"path": str(path), "target": "y", **cfg})
    assert str(err.value) == problems[0]
    return problems[0]


# ------------------------------------------------------------------------------------------- tables


def test_an_all_missing_column_is_named_empty_with_the_features_key(tmp_path):
    df = table()
    df["b"] = np.nan
    path = tmp_path / "d.csv"
    df.to_csv(path, index=False)
    assert only_problem(path) == (f"datasets.mine.features: {path}: column 'b' is empty (all 40 values missing); "
                                  "drop it from the inputs, datasets.mine.features: ['a'] (every other feature), or "
                                  "fill it in")
    assert table_dataset("mine", {"path": str(path), "target": "y", "features": ["a"]}).feature_names == ["a"]
    df["y"] = np.nan
    df.to_csv(path, index=False)
    assert f"datasets.mine.target: {path}: target column 'y' is empty (all 40 values missing); fill it in or pick " \
           "another target column in datasets.mine.target" in validate_table("mine", {"path": str(path),
                                                                                      "target": "y"})


@pytest.mark.parametrize("sep, word", [(";", "';'"), ("\t", "tab")])
def test_a_csv_with_another_separator_says_so_and_the_fix_works(tmp_path, sep, word):
    path = tmp_path / "d.csv"
    table().to_csv(path, index=False, sep=sep)
    header = sep.join(["a", "b", "y"])
    assert only_problem(path) == (
        f"datasets.mine.path: {path} looks {word}-separated (its header {header!r} reads as one column); kdreg reads "
        "comma-separated CSV: convert it, e.g. save it as comma-separated CSV from your spreadsheet, or in Python "
        f"pd.read_csv({str(path)!r}, sep={sep!r}).to_csv({str(path)!r}, index=False) (add decimal=',' if its "
        "numbers use a decimal comma)")
    pd.read_csv(path, sep=sep).to_csv(path, index=False)  # the fix, as given
    assert table_dataset("mine", {"path": str(path), "target": "y"}).feature_names == ["a", "b"]


def test_a_ragged_npz_names_each_array_and_its_length(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, a=np.arange(40.0), b=np.arange(39.0), y=np.arange(40.0))
    assert only_problem(path) == (f"datasets.mine.path: {path}: its arrays differ in length ('a': 40, 'b': 39, "
                                  "'y': 40); each array is one column of the table and needs one value per row: save "
                                  "the table again with every array the same length")


def test_a_constant_target_is_refused(tmp_path):
    df = table()
    df["y"] = 3.5
    path = tmp_path / "d.parquet"
    df.to_parquet(path)
    assert only_problem(path) == (f"datasets.mine.target: {path}: target column 'y' is constant (every row holds "
                                  "3.5); a constant target cannot be learned or corrupted by label noise: pick another "
                                  "target column in datasets.mine.target")
    assert table_dataset("mine", {"path": str(path), "target": "a"}).feature_names == ["b", "y"]


# ------------------------------------------------------------------------------------------- params


def params_dir(tmp_path, committed_params, edit=None, text=None):
    """A checkout-like folder: the shrunk params (edited, or replaced by ``text``) beside the schema."""
    (tmp_path / SCHEMA).parent.mkdir(parents=True)
    shutil.copy(ROOT / SCHEMA, tmp_path / SCHEMA)
    params = shrink(committed_params)
    if edit:
        edit(params)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, allow_unicode=True) if text is None else text)
    return tmp_path


def invalid(root) -> str:
    """`kdreg check`'s report on bad params: INVALID, with the problem."""
    lines, problems = check("params.yaml", root=root)
    assert problems == 1 and lines[0].startswith("params: INVALID\n"), lines
    return lines[0].removeprefix("params: INVALID\n")


def test_a_device_kdreg_cannot_use_is_invalid_params(tmp_path, committed_params):
    root = params_dir(tmp_path, committed_params, lambda p: p.update(device="mps"))
    message = invalid(root)
    assert message.startswith(f"{root / 'params.yaml'}:\n  device: 'mps' is not a device kdreg runs on; it takes "
                              "auto, cpu, cuda or cuda:N, and this machine has cpu")
    assert message.endswith("; set device: auto (the GPU where a job finds one, else the CPU) or cpu")
    (root / "params.yaml").write_text((root / "params.yaml").read_text().replace("device: mps", "device: auto"))
    assert check("params.yaml", root=root)[1] == 0  # the fix


def test_cuda_without_cuda_is_invalid_params(tmp_path, committed_params):
    if device_problem("cuda") is None:
        pytest.skip("this machine can run CUDA")
    message = invalid(params_dir(tmp_path, committed_params, lambda p: p.update(device="cuda:1")))
    assert "device: cuda:1, but " in message and "set device: auto" in message and " or cpu" in message


@pytest.mark.parametrize("text, what", [("", "is empty"), ("# nothing yet\n", "is empty"),
                                        ("- seeds: 2\n- noise: {}\n", "holds a YAML list, not a mapping")])
def test_an_empty_or_list_params_file_names_the_file_and_the_way_back(tmp_path, committed_params, text, what):
    root = params_dir(tmp_path, committed_params, text=text)
    expected = (f"{root / 'params.yaml'} {what}; it must be a mapping of keys like the committed params.yaml's "
                f"(device, seeds, noise, methods, datasets, ...); restore it with `git checkout "
                f"{root / 'params.yaml'}` and edit from there")
    assert invalid(root) == expected
    with pytest.raises(ValueError) as err:
        load_yaml(root / "params.yaml")  # what the Snakefile runs first
    assert str(err.value) == expected
    # and Snakemake, reading params.yaml itself, says the same before its generic config message
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-n"], cwd=root,
                          capture_output=True, text=True)
    assert proc.returncode != 0 and f"params.yaml {what}; it must be a mapping" in proc.stdout + proc.stderr


def add_accented(params):
    params["datasets"]["tábla"] = {"enabled": True, "kind": "table", "path": "missing.csv", "target": "y"}


NAME_MESSAGE = ("  datasets: the dataset name 'tábla' is not allowed: it becomes file names, workflow wildcards and "
                "metric keys, so it must be lowercase ASCII letters, digits and underscores, starting with a letter; "
                "rename it (e.g. to tabla), and wherever else params.yaml names it")


def test_a_non_ascii_dataset_name_is_the_one_message(tmp_path, committed_params):
    root = params_dir(tmp_path, committed_params, add_accented)
    assert invalid(root) == f"{root / 'params.yaml'}:\n{NAME_MESSAGE}"


def test_snakemake_says_the_dataset_name_first(tmp_path, committed_params):
    root = params_dir(tmp_path, committed_params, add_accented)
    proc = snakemake(root, "-n", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and f"params.yaml:\n{NAME_MESSAGE}\n" in out, out[-3000:]
    assert "does not match" not in out and "missing.csv" not in out


# ------------------------------------------------------------------------------------------- MPIIGaze archive


USER_FIX = ("Point datasets.mpiigaze.archive at a good copy of MPIIGaze.tar.gz{also}, or set it to null to "
            "download the official archive")


def test_a_users_bad_archive_is_not_theirs_to_download_again(tmp_path):
    from kdreg import mpiigaze as mg
    from mpiigaze_fixture import archive, build
    mine = tmp_path / "my data" / "MPIIGaze.tar.gz"
    mine.parent.mkdir()
    mine.write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(ValueError) as err:
        mg.verify_archive(mine)
    said = str(err.value)
    assert said.startswith(f"your archive at {mine} (datasets.mpiigaze.archive) is not a valid MPIIGaze archive: it "
                           "is not a readable tar archive (")
    assert said.endswith(USER_FIX.format(also="")) and "download again" not in said
    # the same through `kdreg check`'s look at the source, and for an archive of something else
    build(tmp_path / "src", people=["p00"], days=((1, 2),))
    archive(tmp_path / "src", mine)
    lines, problems = mg.source_report({"archive": str(mine)}, tmp_path)
    assert problems == 1 and lines[1] == f"archive {mine}: CORRUPT"
    assert lines[2].startswith(f"  your archive at {mine} (datasets.mpiigaze.archive) is not a valid MPIIGaze "
                               "archive: it lacks 28 expected members")
    assert lines[2].endswith(USER_FIX.format(also=""))
    # changed after it was verified: the recorded checksum is beside the user's file
    build(tmp_path / "full", people=mg.PEOPLE, days=((1, 1),))
    archive(tmp_path / "full", mine)
    mg.verify_archive(mine)
    mine.write_bytes(mine.read_bytes()[:-10])
    recorded = mine.with_name(mine.name + ".sha256")
    with pytest.raises(ValueError) as err:
        mg.verify_archive(mine)
    assert str(err.value).endswith(USER_FIX.format(
        also=f" (if you replaced it with a good copy on purpose, delete {recorded} to verify it afresh)"))


def test_the_pipelines_own_download_is_still_downloaded_again(tmp_path, monkeypatch):
    from kdreg import mpiigaze as mg
    monkeypatch.chdir(tmp_path)
    download = tmp_path / mg.DOWNLOADED
    download.parent.mkdir(parents=True)
    download.write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(ValueError, match=r"(?s)is not a readable tar archive \(.*\)\. Delete it and download again$"):
        mg.verify_archive(mg.DOWNLOADED)  # as the extract step names it
    lines, problems = mg.source_report({"archive": None}, tmp_path)
    assert problems == 1 and lines[2].endswith("Delete it and download again")
