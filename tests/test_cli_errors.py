"""Every command, given a missing file, a file of the wrong kind or bad arguments, stops with one `error:` line
that names the problem, and never a traceback."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    (d / "garbage.npz").write_bytes(b"not a zip at all")
    (d / "garbage.csv").write_text("x,y\n1,2\n")
    (d / "text.yaml").write_text("key: [unclosed\n")
    (d / "empty_dir").mkdir()
    return d


def commands(d: Path) -> dict[str, list[str]]:
    missing = str(d / "missing")
    return {
        "make-data bad config": ["make-data", "--config", str(d / "text.yaml"), "--out", str(d / "o1.npz")],
        "make-data unknown dataset": ["make-data", "--dataset", "nope", "--out", str(d / "o2.npz")],
        "corrupt missing data": ["corrupt", "--data", missing, "--level", "0.2", "--seed", "0", "--out",
                                 str(d / "o3.npz")],
        "corrupt garbage data": ["corrupt", "--data", str(d / "garbage.npz"), "--level", "0.2", "--seed", "0",
                                 "--out", str(d / "o4.npz")],
        "corrupt unknown kind": ["corrupt", "--data", str(d / "garbage.npz"), "--kind", "bogus", "--level", "0.2",
                                 "--seed", "0", "--out", str(d / "o5.npz")],
        "train-teacher garbage data": ["train-teacher", "--data", str(d / "garbage.npz"), "--noisy",
                                       str(d / "garbage.npz"), "--config", "{}", "--seed", "0", "--out-dir",
                                       str(d / "t")],
        "train-teachers missing dir": ["train-teachers", "--data", missing, "--noisy-dir", missing, "--models",
                                       "0.2:0", "--config", "{}", "--out-dir", str(d / "tt")],
        "train-students bad member": ["train-students", "--method", "kd", "--data", missing, "--noisy-dir", missing,
                                      "--models", "zero", "--config", "{}", "--out-dir", str(d / "s")],
        "collect missing group": ["collect", "--groups", missing, "--out", str(d / "runs.csv")],
        "collect not a group": ["collect", "--groups", str(d / "empty_dir"), "--out", str(d / "runs.csv")],
        "aggregate wrong columns": ["aggregate", "--runs", str(d / "garbage.csv"), "--methods", "kd", "--metrics",
                                    str(d / "m.json"), "--table-md", str(d / "t.md"), "--table-csv", str(d / "t.csv"),
                                    "--error-csv", str(d / "e.csv"), "--rejection-csv", str(d / "r.csv")],
        "study missing runs": ["study", "--runs", f"a={missing}", "--metric", "rmse", "--csv", str(d / "s.csv"),
                               "--md", str(d / "s.md")],
        "benchmark-summary missing runs": ["benchmark-summary", "--runs", f"a={missing}", "--metric", "rmse",
                                           "--long", str(d / "l.csv"), "--csv", str(d / "b.csv"), "--md",
                                           str(d / "b.md")],
        "frontier-table runs of the wrong kind": ["frontier-table", "--runs", str(d / "garbage.csv"), "--csv",
                                                  str(d / "f.csv"), "--equal-csv", str(d / "fe.csv"), "--equal-md",
                                                  str(d / "fe.md"), "--metrics", str(d / "f.json")],
        "frontier-table runs and groups": ["frontier-table", "--runs", str(d / "garbage.csv"), "--students",
                                           f"a={missing}", "--csv", str(d / "f.csv"), "--equal-csv",
                                           str(d / "fe.csv"), "--equal-md", str(d / "fe.md"), "--metrics",
                                           str(d / "f.json")],
        "frontier-table no runs copy": ["frontier-table", "--students", f"a={missing}", "--teachers", f"a={missing}",
                                        "--models", "0.2:0", "--csv", str(d / "f.csv"), "--equal-csv",
                                        str(d / "fe.csv"), "--equal-md", str(d / "fe.md"), "--metrics",
                                        str(d / "f.json")],
        "plot wrong columns": ["plot", "error-vs-noise", str(d / "garbage.csv"), "--out", str(d / "p.png")],
        "check missing params": ["check", "--params", missing],
        "evaluate garbage checkpoint": ["evaluate", "--checkpoint", str(d / "garbage.csv"), "--data",
                                        str(d / "garbage.npz")],
    }


CASES = list(commands(Path("/x")))


@pytest.mark.parametrize("case", CASES)
def test_a_bad_file_or_argument_gets_an_error_line_and_no_traceback(files, case):
    argv = commands(files)[case]
    proc = subprocess.run([sys.executable, "-m", "kdreg", *argv], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT / "src")}, timeout=120)
    assert proc.returncode != 0, (case, proc.stdout[-500:])
    assert "Traceback" not in proc.stderr, (case, proc.stderr[-2000:])
    said = proc.stderr + proc.stdout  # `kdreg check` reports on stdout, as INVALID
    assert "error" in proc.stderr or "INVALID" in proc.stdout, (case, said[-500:])
