"""The README's first-screen commands and what CI runs must not drift apart."""
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def first_code_block(text: str) -> str:
    return text.split("```bash", 1)[1].split("```", 1)[0]


def test_ci_runs_the_readme_install_and_test_commands():
    block = first_code_block((ROOT / "README.md").read_text())
    ci = (ROOT / ".ci" / "run").read_text()
    assert "pip install torch==2.13.0 && pip install -e \".[pipeline,benchmark,test]\"" in block
    assert "pip install torch==2.13.0 && pip install -e \".[pipeline,benchmark,test]\"" in ci
    assert "python -m pytest" in block and "python -m pytest" in ci


def test_torch_is_pinned_everywhere():
    assert '"torch==2.13.0"' in (ROOT / "pyproject.toml").read_text()
    assert "torch==2.13.0" in (ROOT / "environment.yml").read_text()


def test_own_data_example_in_the_readme_is_valid(tmp_path):
    """Run the README's own-data snippet (minus the Snakemake call) on a copy of params.yaml and validate it."""
    import shutil
    import subprocess
    import sys

    from kdreg.config import load_params
    text = (ROOT / "README.md").read_text()
    section = text.split("## Use kdreg on your own data", 1)[1]
    snippet = section.split("```bash", 1)[1].split("```", 1)[0]
    snippet = "\n".join(line for line in snippet.splitlines() if not line.startswith("snakemake"))
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    env_python = f"PATH={Path(sys.executable).parent}:$PATH\n"
    subprocess.run(["bash", "-c", env_python + snippet], cwd=tmp_path, check=True)
    import os
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        params = load_params("params.yaml", schema=ROOT / "workflow/schemas/params.schema.yaml")
    finally:
        os.chdir(cwd)
    assert params["datasets"]["my_data"]["kind"] == "table" and (tmp_path / "my_data.csv").exists()
