"""The README's first-screen commands and what CI runs must not drift apart."""
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def first_code_block(text: str) -> str:
    return text.split("```bash", 1)[1].split("```", 1)[0]


def test_ci_runs_the_readme_install_and_test_commands():
    block = first_code_block((ROOT / "README.md").read_text())
    ci = (ROOT / ".ci" / "run").read_text()
    assert "pip install torch==2.13.0 && pip install -e \".[pipeline,test]\"" in block
    assert "pip install torch==2.13.0 && pip install -e \".[pipeline,test]\"" in ci
    assert "python -m pytest" in block and "python -m pytest" in ci


def test_torch_is_pinned_everywhere():
    assert '"torch==2.13.0"' in (ROOT / "pyproject.toml").read_text()
    assert "torch==2.13.0" in (ROOT / "environment.yml").read_text()
