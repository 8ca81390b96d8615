"""Variants: overrides applied and validated before any job, work shared between variants run once, and a changed
variant reruns its own jobs only."""
import re

import pytest
import yaml

from conftest import ROOT, rule_kind, shrink, snakemake
from kdreg import layout, variants
from kdreg.config import validate_params

SCHEMA = ROOT / "workflow/schemas/params.schema.yaml"


@pytest.fixture
def params():
    return validate_params(shrink(yaml.safe_load((ROOT / "params.yaml").read_text())), SCHEMA)


def test_overrides_reach_exactly_their_keys(params):
    params["variants"] = {"huber": {"datasets.sinusoid.teacher.loss": "huber", "loss_options.tor.k": 2.5}}
    resolved = variants.resolve(params, SCHEMA)
    assert set(resolved) == {"", "huber"}
    v = resolved["huber"]
    assert v["datasets"]["sinusoid"]["teacher"]["loss"] == "huber" and v["loss_options"]["tor"]["k"] == 2.5
    assert params["datasets"]["sinusoid"]["teacher"]["loss"] == "mse"  # the default is left alone
    # content-keyed: the variant's teacher differs, its data and its scratch students do not
    base, other = layout.Paths(params, "sinusoid"), layout.Paths(v, "sinusoid")
    assert base.clean == other.clean and base.teacher_dir(0) != other.teacher_dir(0)
    assert base.student_dir("scratch", 0) == other.student_dir("scratch", 0)
    assert base.student_dir("tor", 0) != other.student_dir("tor", 0)


@pytest.mark.parametrize("overrides, message", [
    ({"datasets.sinusoid.teacher.losss": "huber"}, "variants.bad: datasets.sinusoid.teacher.losss"),
    ({"datasets.sinusiod.teacher.loss": "huber"}, "datasets.sinusiod is not a section"),
    ({"datasets.sinusoid.teacher.loss": "hubber"}, "variant 'bad'"),
    ({"datasets.sinusoid.teacher.loss": "hubber"}, "datasets.sinusoid.teacher.loss"),
    ({"seeds": 0}, "seeds"),
    ({"pipeline.group_size": 2}, "pipeline settings change how fast jobs run"),
    ({"datasets.sinusoid.enabled": False}, "cannot be overridden"),
    ({"figures.fits_level": 0.2}, "figures.fits_level"),
])
def test_a_bad_override_is_refused_naming_the_variant_and_key(params, overrides, message):
    params["variants"] = {"bad": overrides}
    with pytest.raises(ValueError, match=re.escape(message)):
        variants.resolve(params, SCHEMA)


def test_a_study_naming_no_variant_is_refused(params):
    params["variants"] = {"huber": {"datasets.sinusoid.teacher.loss": "huber"}}
    params["studies"] = {"teachers": ["default", "hubr"]}
    with pytest.raises(ValueError, match=r"studies.teachers names \['hubr'\]"):
        variants.resolve(params, SCHEMA)


def test_result_names_split_back_and_variants_run_for_the_datasets_they_name(params):
    assert variants.split_name(variants.result_name("sinusoid", "teacher_huber")) == ("sinusoid", "teacher_huber")
    assert variants.split_name("sinusoid") == ("sinusoid", "")
    params["variants"] = {"huber": {"datasets.sinusoid.teacher.loss": "huber"}, "gauss": {"noise.kind": "gaussian"}}
    assert variants.runs_for(params, "huber", "sinusoid") and not variants.runs_for(params, "huber", "housing")
    assert variants.runs_for(params, "gauss", "housing") and variants.runs_for(params, "", "housing")


def test_a_bad_override_stops_the_workflow_before_any_job(workdir):
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    params["variants"] = {"robust": {"datasets.sinusoid.teacher.loss": "tukee"}}
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))
    proc = snakemake(workdir, "-n", "all", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "variant 'robust'" in out and "datasets.sinusoid.teacher.loss" in out
    assert not (workdir / "data").exists()


def _jobs(dry_run: str) -> list[tuple[str, str]]:
    """``(rule, output)`` of every job block of a dry run."""
    return [(rule_kind(m.group(1)), m.group(2)) for m in re.finditer(
        r"^(?:local)?rule (\S+):\n(?:    .*\n)*?    output: (.*)$", dry_run, flags=re.M)]


@pytest.mark.slow
def test_changing_one_variant_reruns_only_that_variants_jobs(tmp_path):
    checkout = tmp_path
    params = shrink(yaml.safe_load((ROOT / "params.yaml").read_text()))
    params["variants"] = {"robust": {"datasets.sinusoid.teacher.loss": "huber"},
                          "light": {"loss_options.multitask.lambda": 0.5}}
    params["studies"] = {"all": ["default", "robust", "light"]}
    (checkout / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    first = snakemake(checkout, "all")
    trained = [out for rule, out in _jobs(first.stdout + first.stderr) if rule.startswith("train_")]
    # shared work ran once: one teacher per distinct teacher, and students only where they differ
    # (default: scratch, tor, tor_multitask; robust: tor, tor_multitask; light: tor_multitask)
    assert sum("/teachers/" in o for o in trained) == 2 and sum(o.count("/students/") for o in trained) == 6
    for name in ("sinusoid", "sinusoid-robust", "sinusoid-light"):
        assert (checkout / f"results/metrics/{name}.json").exists()
    assert (checkout / "results/tables/studies/sinusoid/all.md").exists()
    assert (checkout / "results/figures/studies/sinusoid/all_gap.png").exists()

    params["variants"]["robust"]["datasets.sinusoid.teacher.loss"] = "tukey"
    (checkout / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    proc = snakemake(checkout, "-n", "all")
    dry = proc.stdout + proc.stderr
    jobs = _jobs(dry)
    rules = sorted({rule for rule, _ in jobs})
    assert "train_teachers" in rules and "make_data" not in rules and "corrupt" not in rules
    trained = [out for rule, out in jobs if rule.startswith("train_")]
    assert sum("/teachers/" in o for o in trained) == 1
    assert sorted(o.split("/students/")[1].split("/")[0] for o in trained if "/students/" in o) == [
        "tor", "tor_multitask"]
    results = [o for _, o in jobs if o.startswith("results/")]
    assert results and all("sinusoid-robust" in o or "studies/sinusoid/all" in o for o in results), results
