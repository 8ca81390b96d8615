"""Files kdreg writes: equal content gives equal bytes, the user's umask is kept, manifests find damage, and
incomplete or stale results are refused or set aside."""
import os
import time

import numpy as np
import pandas as pd
import pytest
import torch

from kdreg import layout
from kdreg.io import load_checkpoint, save_checkpoint, save_json, save_npz
from kdreg.manifest import MANIFEST, verify_group, write_manifest
from kdreg.results import check_complete


def test_a_checkpoint_is_byte_identical_wherever_it_is_saved(tmp_path):
    state = {"w": torch.arange(12.0).reshape(3, 4), "nested": [{"b": torch.ones(2)}]}
    save_checkpoint(tmp_path / "a" / "model.pt", state)
    save_checkpoint(tmp_path / "b" / "other.pt", state)
    assert (tmp_path / "a/model.pt").read_bytes() == (tmp_path / "b/other.pt").read_bytes()
    assert torch.equal(load_checkpoint(tmp_path / "b/other.pt")["w"], state["w"])


def test_an_npz_is_byte_identical_whatever_the_clock(tmp_path, monkeypatch):
    arrays = {"x": np.arange(5, dtype=np.float32), "kind": np.array("replace")}
    save_npz(tmp_path / "a.npz", **arrays)
    monkeypatch.setattr(time, "time", lambda: 2e9)  # another day: np.savez would stamp it into the zip
    save_npz(tmp_path / "b.npz", **arrays)
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    with np.load(tmp_path / "b.npz") as z:
        assert np.array_equal(z["x"], arrays["x"]) and str(z["kind"]) == "replace"


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_written_files_follow_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        save_json(tmp_path / "m.json", {"a": 1})
    finally:
        os.umask(old)
    assert (tmp_path / "m.json").stat().st_mode & 0o777 == mode


def make_group(root):
    for run in ("p0_s0", "p0.3_s0"):
        (root / run).mkdir(parents=True)
        (root / run / "model.pt").write_bytes(b"weights " + run.encode())
        (root / run / "metrics.json").write_text('{"rmse": 1}')
    write_manifest(root)
    (root / ".snakemake_timestamp").touch()  # Snakemake's, written after the job: ignored
    return root


def test_a_manifest_lists_the_runs_and_finds_every_kind_of_damage(tmp_path):
    group = make_group(tmp_path / "g0-abc")
    assert [p.name for p in verify_group(group)] == ["p0.3_s0", "p0_s0"]
    (group / "p0_s0/model.pt").write_bytes(b"weights p0_s")  # truncated
    with pytest.raises(ValueError, match=r"p0_s0/model.pt was changed or damaged.*rm -r"):
        verify_group(group)
    (group / "p0_s0/model.pt").write_bytes(b"weights p0_s0")
    (group / "p0.3_s0/metrics.json").unlink()
    with pytest.raises(ValueError, match=r"p0.3_s0/metrics.json is missing.*rm -r"):
        verify_group(group)
    (group / MANIFEST).unlink()
    with pytest.raises(ValueError, match="SHA256SUMS is missing: the training job did not finish"):
        verify_group(group)


def runs_table(seeds_per_cell):
    rows = [{"dataset": "sinusoid", "noise_kind": "replace", "noise_level": level, "seed": s, "model": model,
             "rmse": 0.1 * (s + 1)}
            for (model, level), seeds in seeds_per_cell.items() for s in seeds]
    return pd.DataFrame(rows)


def test_aggregation_refuses_a_missing_seed_naming_it():
    full = {("scratch", 0.0): [0, 1, 2], ("scratch", 0.3): [0, 1, 2]}
    check_complete(runs_table(full), 3, ["runs.csv"])
    with pytest.raises(ValueError, match=r"sinusoid scratch at p = 0.3: seeds \[0, 2\], expected 0..2"):
        check_complete(runs_table({**full, ("scratch", 0.3): [0, 2]}), 3, ["runs.csv"])
    with pytest.raises(ValueError, match="seeds \\[0, 0, 1, 2\\]"):  # a duplicated run is as wrong as a missing one
        check_complete(runs_table({**full, ("scratch", 0.0): [0, 0, 1, 2]}), 3, ["runs.csv"])


def test_a_disabled_datasets_results_move_aside(tmp_path):
    for role in ("metrics", "table_md", "figure_error"):
        for dataset in ("sinusoid", "housing"):
            path = tmp_path / layout.RESULTS[role].format(name=dataset)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(dataset)
    moved = layout.retire_results(["housing"], tmp_path)
    assert len(moved) == 3
    assert not (tmp_path / "results/metrics/sinusoid.json").exists()
    assert (tmp_path / "results/disabled/sinusoid/metrics/sinusoid.json").read_text() == "sinusoid"
    assert (tmp_path / "results/figures/housing_error_vs_noise.png").exists()
    assert layout.retire_results(["housing"], tmp_path) == []
