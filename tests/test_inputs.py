"""Bad or hostile inputs: refused before any job, named with the fix; values from params never reach a shell
unquoted (paths with spaces, quotes, `$(...)`, backticks and `;` work as paths and run nothing)."""
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, snakemake
from kdreg import layout
from kdreg.config import check_params, device_problem, load_yaml, validate_params

SCHEMA = ROOT / "workflow/schemas/params.schema.yaml"
# Every shell metacharacter that could run something, plus what breaks unquoted honest paths.
HOSTILE = "my copy $(touch PWNED1) `touch PWNED2`; touch PWNED3 'q' \"dq\" && touch PWNED4"


def write(workdir: Path, params: dict) -> None:
    (workdir / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def nothing_ran(*dirs: Path) -> bool:
    return not any(p.name.startswith("PWNED") for d in dirs for p in d.rglob("*"))


def refused_before_any_job(workdir: Path, *needles: str) -> str:
    proc = snakemake(workdir, "-n", "all", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-2000:]
    for needle in needles:
        assert needle in out, (needle, out[-3000:])
    assert not (workdir / "data").exists()
    return out


def shrunk(workdir: Path) -> dict:
    return yaml.safe_load((workdir / "params.yaml").read_text())


def test_a_key_given_twice_is_refused_naming_it_and_its_lines(workdir):
    text = (workdir / "params.yaml").read_text().replace("seeds: 2\n", "seeds: 2\nseeds: 3\n", 1)
    (workdir / "params.yaml").write_text(text)
    refused_before_any_job(workdir, "'seeds' is given twice", "lines")
    with pytest.raises(ValueError, match="'seeds' is given twice"):
        load_yaml(workdir / "params.yaml")


def test_noise_levels_that_spell_alike_are_refused(workdir):
    params = shrunk(workdir)
    params["noise"]["levels"] = [0.0, 0.3, 0.300000001]
    write(workdir, params)
    refused_before_any_job(workdir, "noise.levels: 0.3 and 0.300000001", "remove one")


@pytest.mark.parametrize("name", ["My-Data", "my.data", "data set", "9lives"])
def test_dataset_names_outside_lowercase_letters_digits_underscore_are_refused(workdir, name):
    params = shrunk(workdir)
    params["datasets"][name] = {"enabled": False, "kind": "table", "path": "x.csv", "target": "y"}
    write(workdir, params)
    refused_before_any_job(workdir, "datasets", name)


def test_cuda_without_cuda_is_refused_before_any_job(workdir):
    problem = device_problem("cuda")
    if problem is None:
        pytest.skip("this machine can run CUDA")
    params = shrunk(workdir)
    params["device"] = "cuda"
    write(workdir, params)
    refused_before_any_job(workdir, "device: cuda", "device: auto")


def test_a_control_character_in_a_string_is_refused(workdir):
    params = shrunk(workdir)
    params["datasets"]["mpiigaze"]["root"] = "/data/x\n/y"
    write(workdir, params)
    refused_before_any_job(workdir, "datasets.mpiigaze.root", "control character")


@pytest.mark.parametrize("url", ["file:///tmp/a `touch PWNED1`.tar.gz", "ftp://example.org/x.tar.gz",
                                 "http://example.org/a b.tar.gz", "/tmp/MPIIGaze.tar.gz"])
def test_malformed_urls_are_refused(workdir, url):
    params = shrunk(workdir)
    params["datasets"]["mpiigaze"].update(enabled=True, url=url)
    write(workdir, params)
    refused_before_any_job(workdir, "datasets.mpiigaze.url")
    assert nothing_ran(workdir)


def test_table_errors_reach_the_console_before_any_job(workdir, tmp_path):
    csv = tmp_path / "dup.csv"
    csv.write_text("a,y,y\n" + "".join(f"{i},{i},{i}\n" for i in range(40)))
    params = shrunk(workdir)
    params["datasets"]["dup"] = {"enabled": True, "kind": "table", "path": str(csv), "target": "y"}
    write(workdir, params)
    refused_before_any_job(workdir, str(csv), "'y'")


def run_rule(workdir: Path, rule: str):
    return snakemake(workdir, rule, check=False)


def makes_safely(workdir: Path, target: str, output: str, hostile: Path) -> None:
    """Running ``target`` (a rule or a file) succeeds, writes ``output`` (a glob) and executes nothing."""
    proc = run_rule(workdir, target)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert list(workdir.glob(output)), output
    assert nothing_ran(workdir, hostile)


def test_hostile_mpiigaze_paths_are_used_as_paths(workdir, tmp_path):
    """url (file://), archive and root, each through its own rule: the data is found, nothing is executed."""
    sys.path.insert(0, str(ROOT / "tests"))
    from mpiigaze_fixture import archive, build
    people = [f"p{i:02d}" for i in range(15)]
    src = build(tmp_path / HOSTILE / "src", people=people, days=((1, 2),))
    tgz = archive(src.parent, tmp_path / HOSTILE / "MPIIGaze.tar.gz")
    # a URL may hold $ ( ) ; (legal URL characters), enough for a command without spaces: $IFS$9 is a space to
    # a shell. Quoted, it is only a name: the file of that literal name is fetched.
    odd = tmp_path / "x;mkdir$IFS$9PWNED5;$(mkdir$IFS$9PWNED6)y.tar.gz"
    odd.write_bytes(tgz.read_bytes())
    params = shrunk(workdir)
    params["datasets"]["mpiigaze"].update(enabled=True, url=f"file://{odd}", per_person=2, folds=["p00"])
    write(workdir, params)
    proc = run_rule(workdir, "mpiigaze_download")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (workdir / "resources/mpiigaze/MPIIGaze.tar.gz").read_bytes() == tgz.read_bytes()

    params["datasets"]["mpiigaze"].update(archive=str(tgz))
    write(workdir, params)
    assert run_rule(workdir, "mpiigaze_extract").returncode == 0

    params["datasets"]["mpiigaze"].update(archive=None, root=str(src))
    write(workdir, params)
    makes_safely(workdir, "mpiigaze_prepare", "data/mpiigaze/prepared-*.npz", tmp_path)


def test_hostile_multipie_root_is_used_as_a_path(workdir, tmp_path):
    sys.path.insert(0, str(ROOT / "tests"))
    from multipie_fixture import build
    root = build(tmp_path / HOSTILE / "MultiPIE", subjects=(1, 2), sessions=(1,), illuminations=(0,))
    params = shrunk(workdir)
    params["datasets"]["multipie"].update(enabled=True, root=str(root), image_size=[16, 16])
    write(workdir, params)
    makes_safely(workdir, "multipie_prepare", "data/multipie/prepared-*.npz", tmp_path)


def test_hostile_table_path_and_dataset_settings_are_used_as_data(workdir, tmp_path):
    folder = tmp_path / HOSTILE
    folder.mkdir()
    csv = folder / "t.csv"
    csv.write_text("a,b,y\n" + "".join(f"{i % 7},{(i * 3) % 11},{i % 5}\n" for i in range(60)))
    params = shrunk(workdir)
    params["datasets"]["sinusoid"]["enabled"] = False
    params["datasets"]["odd"] = {"enabled": True, "kind": "table", "path": str(csv), "target": "y"}
    write(workdir, params)
    validated = check_params(validate_params(shrunk(workdir), SCHEMA), "params")
    target = layout.Paths(validated, "odd").clean
    makes_safely(workdir, target, target, tmp_path)
