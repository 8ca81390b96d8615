"""params.yaml within limits, and settings that would fail inside a job refused before any: each refusal names the
problem, the key or file (and line), the limit, and a fix; `kdreg check` prints no traceback."""
import os
import shutil
import subprocess
import sys
import time

import pytest
import yaml

from conftest import ROOT, shrink
from kdreg.check import check
from kdreg.config import check_params, load_yaml, validate_params

SCHEMA = "workflow/schemas/params.schema.yaml"


def params_dir(tmp_path, committed_params, edit=None, text=None):
    """A checkout-like folder: the shrunk params (edited, or replaced by ``text``, str or bytes) beside the schema."""
    (tmp_path / SCHEMA).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / SCHEMA, tmp_path / SCHEMA)
    params = shrink(committed_params)
    if edit:
        edit(params)
    text = yaml.safe_dump(params, sort_keys=False) if text is None else text
    path = tmp_path / "params.yaml"
    path.write_bytes(text) if isinstance(text, bytes) else path.write_text(text)
    return tmp_path


def kdreg_check(root) -> str:
    """`python -m kdreg check` on ``root``'s params.yaml, as a user runs it: refused, without a traceback; its
    report (stdout and stderr)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run([sys.executable, "-m", "kdreg", "check", "--params", "params.yaml"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert "params: INVALID" in proc.stdout, proc.stdout[-3000:]
    return proc.stdout + proc.stderr


def invalid(root) -> str:
    """`kdreg check`'s report on bad params, run in-process: INVALID, with the problem."""
    lines, problems = check("params.yaml", root=root)
    assert problems == 1 and lines[0].startswith("params: INVALID\n"), lines
    return lines[0].removeprefix("params: INVALID\n")


def refused(params: dict) -> str:
    """The message of the schema or the params check (what Snakemake's parse runs too) on ``params``."""
    with pytest.raises(ValueError) as err:
        check_params(validate_params(params, ROOT / SCHEMA))
    return str(err.value)


# ------------------------------------------------------------------------------------------- reading the file


def test_a_file_over_one_megabyte_is_refused_naming_its_size_and_the_limit(tmp_path, committed_params):
    text = yaml.safe_dump(shrink(committed_params)) + "# padding\n" * 110_000
    root = params_dir(tmp_path, committed_params, text=text)
    out = kdreg_check(root)
    size = (root / "params.yaml").stat().st_size
    assert f"params.yaml is {size:,} bytes; a params file may be at most 1,000,000 bytes" in out


def alias_bomb() -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    return "\n".join(lines + ["methods: *a8"]) + "\n"


def test_an_alias_bomb_is_refused_at_once_naming_the_limit(tmp_path, committed_params):
    root = params_dir(tmp_path, committed_params, text=alias_bomb())
    start = time.perf_counter()
    with pytest.raises(ValueError) as err:
        load_yaml(root / "params.yaml")
    assert time.perf_counter() - start < 1.0
    expected = (f"{root / 'params.yaml'}, line 6: a5: expands to 597,871 values through YAML aliases (*name repeats "
                "the whole value of &name, so aliases of aliases multiply); a params file may hold at most 100,000: "
                "write the values out, or use fewer aliases")
    assert str(err.value) == expected
    start = time.perf_counter()
    out = kdreg_check(root)  # the whole command, a Python start included
    assert time.perf_counter() - start < 10 and "params.yaml, line 6: a5: expands to 597,871 values" in out


def test_snakemake_refuses_an_alias_bomb_before_its_own_load(tmp_path, committed_params):
    """The Snakefile reads params.yaml with the limits before Snakemake's `configfile:` (which has none) does."""
    root = params_dir(tmp_path, committed_params, text=alias_bomb())
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-n"], cwd=root,
                          capture_output=True, text=True, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "params.yaml, line 6: a5: expands to 597,871 values" in out, out[-3000:]
    assert "MemoryError" not in out


def test_a_recursive_alias_and_deep_nesting_are_refused(tmp_path, committed_params):
    root = params_dir(tmp_path, committed_params, text="seeds: 2\nmethods: &m [scratch, *m]\n")
    with pytest.raises(ValueError, match=r"params.yaml, line 2: methods.1: an alias \(\*name\) inside the value of "
                                         r"its own anchor \(&name\) makes a value that holds itself"):
        load_yaml(root / "params.yaml")
    (root / "params.yaml").write_text("seeds: 2\nmethods: " + "[" * 3000 + "]" * 3000 + "\n")
    assert "params.yaml, line 2: methods.0.0.…: values nest more than 50 levels deep" in kdreg_check(root)


def test_a_list_over_ten_thousand_items_is_refused_naming_its_key(tmp_path, committed_params):
    root = params_dir(tmp_path, committed_params, lambda p: p["noise"].update(levels=[0.1] * 10_001))
    out = kdreg_check(root)
    assert ("params.yaml, line" in out and "noise.levels: a list of more than 10,000 items; a params file's lists "
            "may hold at most 10,000: shorten it") in out


def test_more_than_200_variants_are_refused_naming_the_key(tmp_path, committed_params):
    many = {f"v{i}": {"loss_options.tor.k": 2.0 + i / 1000} for i in range(201)}
    root = params_dir(tmp_path, committed_params, lambda p: p.update(variants=many))
    assert invalid(root) == (f"{root / 'params.yaml'}:\n  variants: 201 variants; a params file may hold at most "
                             "200 (each one is validated and planned at every Snakemake start): remove some, or run "
                             "them from a second params file (snakemake --configfile other.yaml)")


def test_a_non_utf8_file_names_the_line_and_column_and_the_fix_works(tmp_path, committed_params):
    text = yaml.safe_dump(shrink(committed_params), sort_keys=False).replace(
        "device: cpu\n", "device: cpu\n# café au lait\n", 1)
    root = params_dir(tmp_path, committed_params, text=text.encode("cp1252"))
    out = kdreg_check(root)
    line = text.splitlines().index("# café au lait") + 1
    assert (f"params.yaml, line {line}, column 6: byte 0xe9 ('é' in Windows-1252) is not UTF-8, and params files "
            "are read as UTF-8: save the file as UTF-8 (your editor's 'save with encoding'), or convert it: iconv -f "
            "WINDOWS-1252 -t UTF-8 params.yaml > params.yaml.utf8 && mv params.yaml.utf8 params.yaml") in out
    if shutil.which("iconv") is None:
        pytest.skip("no iconv here to run the fix")
    subprocess.run("iconv -f WINDOWS-1252 -t UTF-8 params.yaml > params.yaml.utf8 && mv params.yaml.utf8 params.yaml",
                   shell=True, cwd=root, check=True)
    assert load_yaml(root / "params.yaml")["device"] == "cpu"


def test_a_key_given_twice_is_still_refused(tmp_path, committed_params):
    root = params_dir(tmp_path, committed_params, text="seeds: 2\nnoise: {levels: [0.1]}\nseeds: 3\n")
    assert "key 'seeds' is given twice (lines 1 and 3); keep one" in kdreg_check(root)


# ------------------------------------------------------------------------------------------- settings


def test_a_frontier_width_past_4096_is_refused_by_the_schema(tmp_path, committed_params):
    root = params_dir(tmp_path, committed_params, lambda p: p["frontier"].update(widths=[2, 1_000_000_000]))
    out = kdreg_check(root)
    assert "frontier.widths.1: 1000000000 is greater than the maximum of 4096" in out
    edit = (lambda p: p["datasets"]["sinusoid"]["teacher"]["model"].update(hidden=[64, 5000]))
    message = invalid(params_dir(tmp_path / "mlp", committed_params, edit))  # every MLP layer: the same limit
    assert "datasets.sinusoid.teacher.model.hidden.1: 5000 is greater than the maximum of 4096" in message


def test_tor_weights_without_the_mixture_threshold_are_refused(tmp_path, committed_params):
    root = params_dir(tmp_path, committed_params,
                      lambda p: p["loss_options"].update(tor={"mode": "weight", "threshold": "mad"}))
    assert ("loss_options.tor: mode 'weight' needs threshold 'mixture' (the other thresholds give no weights, only a "
            "mask: use mode 'drop'), or set loss_options.tor.threshold: mixture") in kdreg_check(root)
    from kdreg.losses import TORLoss  # the loss says the same rule in its own words
    with pytest.raises(ValueError, match="tor mode 'weight' needs threshold 'mixture'"):
        TORLoss(mode="weight")


@pytest.mark.parametrize("spread, said", [(1e39, "noise.spread: 1e+39 is greater than the maximum of 100"),
                                          (float("inf"), "noise.spread: inf is greater than the maximum of 100"),
                                          (float("nan"), "noise.spread: nan is not a finite number; give one")])
def test_a_noise_spread_past_100_or_not_finite_is_refused(tmp_path, committed_params, spread, said):
    root = params_dir(tmp_path, committed_params, lambda p: p["noise"].update(spread=spread))
    assert said in invalid(root)


def test_frontier_levels_and_seeds_its_sources_do_not_run_are_refused_by_kdreg_check(tmp_path, committed_params):
    root = params_dir(tmp_path, committed_params, lambda p: p["frontier"].update(levels=[0.3, 0.4], seeds=3))
    out = kdreg_check(root)
    assert ("frontier: sinusoid has noise levels ['0', '0.3'] and 2 seeds, and the frontier asks for frontier.levels "
            "[0.4], which it does not run, and frontier.seeds 3, more than it runs; the frontier trains students at "
            "the teachers sinusoid trains, and no teacher of its own: choose frontier.levels among those levels and "
            "frontier.seeds at most 2, or remove default from frontier.variants") in out


def test_a_variant_setting_frontier_studies_or_benchmark_keys_is_refused(tmp_path, committed_params):
    root = params_dir(tmp_path, committed_params, lambda p: p.update(variants={"wide": {"frontier.widths": [128]}}))
    assert ("variants.wide: frontier.widths cannot be overridden (the frontier is one comparison across its sources: "
            "set it at the top level, and list the variants it reads in frontier.variants); remove it from the "
            "variant") in kdreg_check(root)
    for key in ("studies.x", "benchmark.enabled"):
        root = params_dir(tmp_path / key, committed_params, lambda p: p.update(variants={"v": {key: True}}))
        assert f"variants.v: {key} cannot be overridden (" in invalid(root)


# ------------------------------------------------------------------------------------------- rules jobs enforced late


def edited(committed_params, edit) -> dict:
    params = shrink(committed_params)
    edit(params)
    return params


def test_a_resnet_depth_other_than_6n_plus_2_is_refused(committed_params):
    def edit(p):
        p["datasets"]["sinusoid"]["enabled"] = False
        p["datasets"]["multipie"].update(enabled=True, root=str(ROOT))  # a folder; the model is refused first
        p["datasets"]["multipie"]["teacher"]["model"]["depth"] = 9
    message = refused(edited(committed_params, edit))
    assert ("datasets.multipie.teacher.model.depth: ResNet-preact depth must be 6n + 2 with n >= 1 (8, 14, 20, ...), "
            "got 9; set one of those") in message


def test_a_model_that_cannot_read_the_inputs_is_refused(committed_params):
    message = refused(edited(committed_params, lambda p: p["datasets"]["sinusoid"]["student"].update(
        model={"kind": "lenet"})))
    assert ("datasets.sinusoid.student.model: kind lenet is an image model, and sinusoid's inputs are not images; "
            "give an MLP, e.g. datasets.sinusoid.student.model: {hidden: [32, 32], activation: tanh}") in message

    def mlp_on_images(p):
        p["datasets"]["multipie"].update(enabled=True, root=str(ROOT))
        p["datasets"]["multipie"]["student"]["model"] = {"hidden": [8]}
    assert ("datasets.multipie.student.model: an MLP cannot read multipie's images; give an image model, e.g. "
            "datasets.multipie.student.model: {kind: lenet} or {kind: resnet_preact, depth: 8}"
            ) in refused(edited(committed_params, mlp_on_images))
    bad_table = edited(committed_params, lambda p: p["datasets"]["boston"].update(student={"model": {"kind": "lenet"}}))
    assert "datasets.boston.student.model: Additional properties are not allowed ('kind' was unexpected)" in \
        refused(bad_table)


@pytest.mark.parametrize("settings, said", [
    ({"n_train": 10, "val_fraction": 0.01},
     "datasets.sinusoid.val_fraction: 10 samples are too few for a validation fraction of 0.01 (n_train, of which "
     "round(0.01 x 10) = 0 would validate); choose a val_fraction that leaves both the training and the validation "
     "split at least one sample, or raise datasets.sinusoid.n_train"),
    ({"n_train": 100, "teacher": {"cross_fit": 50}},
     "datasets.sinusoid.teacher.cross_fit: 80 training samples are too few for cross_fit: 50 (n_train 100 less the "
     "validation split; each of the 50 folds needs at least 2); set cross_fit to at most 40, or raise "
     "datasets.sinusoid.n_train"),
])
def test_sinusoid_splits_its_jobs_would_refuse_are_refused(committed_params, settings, said):
    def edit(p):
        s = p["datasets"]["sinusoid"]
        s["teacher"].update(settings.pop("teacher", {}))
        s.update(settings)
    assert said in refused(edited(committed_params, edit))


@pytest.mark.parametrize("people, folds, said", [
    (["p00", "p20"], [], "datasets.mpiigaze.people: ['p20'] are not people of MPIIGaze, whose people are p00 .. "
                         "p14; fix the names"),
    (["p00"], ["p00"], "datasets.mpiigaze.people: ['p00'] is one person, and a fold trains on the other prepared "
                       "people; list at least two, or [] for all 15"),
    (["p00", "p01"], [], "datasets.mpiigaze.folds: [] holds out all 15 people, but datasets.mpiigaze.people "
                         "prepares only ['p00', 'p01']; list the folds to evaluate (e.g. folds: ['p00', 'p01']), or "
                         "set people: []"),
    (["p00", "p01"], ["p01", "p02"], "datasets.mpiigaze.folds: ['p02'] are not among datasets.mpiigaze.people "
                                     "['p00', 'p01'], and a fold holds out a prepared person; list folds from "
                                     "people, or add ['p02'] to people"),
])
def test_mpiigaze_people_and_folds_no_fold_could_use_are_refused(committed_params, people, folds, said):
    def edit(p):
        p["datasets"]["mpiigaze"].update(enabled=True, people=people, folds=folds)
    assert said in refused(edited(committed_params, edit))


def test_an_enabled_image_dataset_needs_its_models(committed_params):
    def edit(p):
        p["datasets"]["multipie"].update(enabled=True, root=str(ROOT))
        del p["datasets"]["multipie"]["student"]
    assert "datasets.multipie: 'student' is a required property" in refused(edited(committed_params, edit))
