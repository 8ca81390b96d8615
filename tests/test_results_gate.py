"""The CI results gate reads `dvc status` as DVC writes it: data/ and models/ missing from a clone pass, anything
else that changed fails."""
import importlib.util

import pytest

from conftest import ROOT

spec = importlib.util.spec_from_file_location("results_gate", ROOT / ".ci" / "results_gate.py")
gate = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gate)


def test_a_fresh_clone_passes():
    # `dvc status --json` in a clone whose results match dvc.lock
    assert gate.stale_in({"reproduce": [{"changed outs": {"data": "not in cache", "models": "not in cache"}}]}) == []
    assert gate.stale_in({}) == []


def test_moved_code_params_or_results_fail_naming_each():
    # what `dvc status --json` printed for a clone whose code, params and results moved since dvc.lock
    status = {"reproduce": [
        {"changed deps": {"src/kdreg": "modified", "params.yaml": {"benchmark": "new"}}},
        {"changed outs": {"data": "not in cache", "models": "not in cache", "results/metrics": "modified"}}]}
    stale = gate.stale_in(status)
    assert len(stale) == 3
    assert any("src/kdreg" in s for s in stale) and any("params.yaml" in s and "benchmark" in s for s in stale)
    assert any("results/metrics" in s for s in stale)
    assert gate.stale_in({"reproduce": ["changed command"]}) == ["reproduce: changed command"]


def test_the_machine_record_names_cpu_and_torch():
    record = gate.cpu_type()
    assert set(record) == {"cpu", "isa", "torch"} and record["torch"].startswith("2.13.0")


derived_spec = importlib.util.spec_from_file_location("derived", ROOT / ".ci" / "derived.py")
derived = importlib.util.module_from_spec(derived_spec)
derived_spec.loader.exec_module(derived)


def test_first_difference_names_the_key_the_row_and_column_or_the_line():
    old = '{"p0.1": {"tor": {"rmse_mean": 0.0105, "n": 10}}}'
    new = '{"p0.1": {"tor": {"rmse_mean": 0.0104, "n": 10}}}'
    assert derived.first_difference("m.json", old, new) == "key 'p0.1.tor.rmse_mean': 0.0105 committed, 0.0104 derived"
    csv_old, csv_new = "model,p,rmse\nkd,0.1,0.08\ntor,0.1,0.01\n", "model,p,rmse\nkd,0.1,0.08\ntor,0.1,0.02\n"
    assert derived.first_difference("t.csv", csv_old, csv_new) == "line 3, column 'rmse': '0.01' committed, '0.02' derived"
    assert derived.first_difference("t.md", "a\nb\n", "a\nc\n").startswith("line 2: 'b' committed")


def test_numbers_may_differ_only_in_their_last_bits_across_cpu_types():
    assert derived.equal_up_to_rounding('{"a": 0.30000000000000004}', '{"a": 0.3}')
    assert not derived.equal_up_to_rounding('{"a": 0.0105}', '{"a": 0.0104}')
    assert not derived.equal_up_to_rounding('{"a": 1}', '{"b": 1}')


@pytest.fixture(scope="module")
def committed_run(tmp_path_factory):
    """A git checkout with the shrunk params, its pipeline run and its results committed."""
    import shutil
    import subprocess

    import yaml

    from conftest import copy_checkout, shrink, snakemake
    checkout = tmp_path_factory.mktemp("gate") / "kdreg"
    copy_checkout(checkout)
    shutil.rmtree(checkout / "results")
    (checkout / "params.yaml").write_text(yaml.safe_dump(shrink(yaml.safe_load((ROOT / "params.yaml").read_text())),
                                                         sort_keys=False))
    snakemake(checkout, "all")
    for cmd in (["git", "init", "-q"], ["git", "config", "user.email", "t@t"], ["git", "config", "user.name", "t"],
                ["git", "add", "-A"], ["git", "commit", "-qm", "results"]):
        subprocess.run(cmd, cwd=checkout, check=True, capture_output=True)
    return checkout


def _derive_in_clone(checkout, tmp_path):
    import os
    import subprocess
    import sys
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(checkout), str(clone)], check=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"),
           "PATH": f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ.get('PATH', '')}"}
    return derived.derived_differences(clone, env, derived.planned_jobs(clone, env), bitwise=True)


@pytest.mark.slow
def test_every_derived_file_is_derived_again_and_an_edited_number_is_named(committed_run, tmp_path):
    import subprocess
    differ, checked = _derive_in_clone(committed_run, tmp_path / "a")
    # the sinusoid's metrics, 2 tables, runs copy and 3 plot-data CSVs; the frontier's table, equal-accuracy CSV and
    # Markdown and summary (from its committed runs table)
    assert differ == [] and checked == 7 + 4
    metrics = committed_run / "results/metrics/sinusoid.json"
    text = metrics.read_text()
    edited = text.replace('rmse_mean": 0.', 'rmse_mean": 9.', 1)  # keys are flat: "p0.3.scratch.rmse_mean"
    assert edited != text
    metrics.write_text(edited)
    frontier = committed_run / "results/metrics/frontier.json"
    text = frontier.read_text()
    edited = text.replace('best_scratch_rmse": 0.', 'best_scratch_rmse": 7.', 1)
    assert edited != text
    frontier.write_text(edited)
    subprocess.run(["git", "commit", "-qam", "edited numbers"], cwd=committed_run, check=True)
    differ, _ = _derive_in_clone(committed_run, tmp_path / "b")
    assert len(differ) == 2, differ
    assert differ[0].startswith("results/metrics/sinusoid.json: key '") and "rmse_mean" in differ[0]
    assert differ[1].startswith("results/metrics/frontier.json: key '") and "best_scratch_rmse" in differ[1]
    assert all("committed" in d for d in differ)
