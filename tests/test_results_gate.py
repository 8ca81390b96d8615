"""The CI results gate reads `dvc status` as DVC writes it: data/ and models/ missing from a clone pass, anything
else that changed fails."""
import importlib.util

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
