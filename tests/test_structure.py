"""The house rules: one table per concept, light modules importable without torch, no import cycles, small
modules."""
import subprocess
import sys

import pytest
import yaml

from conftest import ROOT
from kdreg import deps
from kdreg.datasets import KINDS, kind_of
from kdreg.methods import METHODS

MODULES = sorted("kdreg" if p.stem == "__init__" else f"kdreg.{p.stem}" for p in deps.SRC.glob("*.py"))
# Pipeline-level modules: the only ones that may know where the pipeline puts things.
PIPELINE = {"kdreg.layout", "kdreg.jobs", "kdreg.check", "kdreg.cli", "kdreg.deps"}


def test_every_method_of_the_table_is_in_the_schema_and_builds_its_loss():
    from kdreg.losses import get_loss
    schema = yaml.safe_load((ROOT / "workflow/schemas/params.schema.yaml").read_text())
    assert schema["$defs"]["method"]["enum"] == list(METHODS)
    sections = set(schema["properties"]["loss_options"]["properties"])
    for name, method in METHODS.items():
        assert set(method.sections) <= sections | {name}, name
        loss = get_loss(name)
        assert (type(loss).__name__, method.heads) == (method.loss, 2 if method.label_loss else 1)


def test_every_dataset_kind_has_its_schema_section():
    schema = yaml.safe_load((ROOT / "workflow/schemas/params.schema.yaml").read_text())
    builtin = set(schema["properties"]["datasets"]["properties"])
    assert builtin | {"table", "images"} == set(KINDS)
    assert kind_of("housing", {"kind": "table"}) is KINDS["table"]
    assert kind_of("my_images", {"kind": "images"}) is KINDS["images"]
    assert kind_of("digits", {}) is KINDS["digits"]
    assert kind_of("mpiigaze.p03", {}) is KINDS["mpiigaze"]
    with pytest.raises(ValueError, match="unknown dataset kind"):
        kind_of("housing", {"kind": "spreadsheet"})


@pytest.mark.parametrize("module", ["kdreg.methods", "kdreg.datasets", "kdreg.layout", "kdreg.config",
                                    "kdreg.results", "kdreg.plots", "kdreg.cli", "kdreg.cli_parser",
                                    "kdreg.frontier", "kdreg.deps"])
def test_light_modules_import_no_torch(module):
    code = f"import sys, {module}; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def import_graph() -> dict[str, set[str]]:
    """Every import statement of every module, lazy ones included."""
    return {m: deps._imported([deps._tree(m)]) - {m, "kdreg"} for m in MODULES}


def test_no_import_cycle():
    graph, done, path = import_graph(), set(), []

    def visit(module):
        assert module not in path, f"import cycle: {' -> '.join(path[path.index(module):] + [module])}"
        if module in done:
            return
        path.append(module)
        for dep in sorted(graph[module]):
            visit(dep)
        path.pop()
        done.add(module)

    for module in MODULES:
        visit(module)


def test_only_the_pipeline_layer_imports_the_layout():
    importers = {m for m, imported in import_graph().items() if "kdreg.layout" in imported}
    assert importers <= PIPELINE, importers - PIPELINE


def test_no_module_over_400_lines():
    sizes = {p.name: len(p.read_text().splitlines()) for p in deps.SRC.glob("*.py")}
    assert {name: n for name, n in sizes.items() if n > 400} == {}


def test_cached_import_reading_equals_a_fresh_walk_and_hands_out_copies():
    # The workflow asks deps for every rule's sources; the per-module and per-command caches must give what a walk
    # of the sources gives, and a caller that edits its list must not edit the next caller's.
    for module in MODULES:
        assert deps._module_imports(module) == deps._imported([deps._tree(module)]), module
    first = deps.command_modules("train-teachers")
    assert "kdreg.teacher" in first and "kdreg.trainer" in first
    first.append("kdreg.not_a_module")
    assert deps.command_modules("train-teachers") == first[:-1]
    with pytest.raises(ValueError, match="no command"):
        deps.command_modules("no-such-command")
