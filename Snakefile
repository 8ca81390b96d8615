# kdreg: knowledge distillation for regression with noisy labels (Takamoto et al., MIPR 2020).
#
#   snakemake --cores 2 figures        every enabled dataset's figures (and what they need)
#   snakemake --cores 2 tables | metrics | all
#   snakemake --cores 2 benchmark      the suite of real tables (params.yaml benchmark:)
#   snakemake --cores 2 frontier       the small-model frontier (params.yaml frontier:)
#   snakemake --report report.html     every figure and table with captions, from the finished run
#
# params.yaml is the only configuration; it is validated against workflow/schemas/ before any job runs.

import os

from snakemake.utils import min_version

min_version("9.0")

# An empty or non-mapping params.yaml would get Snakemake's generic config message; say which file and the way back.
if not workflow.overwrite_configfiles and os.path.exists("params.yaml"):
    from kdreg.config import load_yaml

    try:
        load_yaml("params.yaml")
    except ValueError as err:
        raise WorkflowError(str(err)) from None


configfile: "params.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/datasets.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/teacher.smk"
include: "workflow/rules/students.smk"
include: "workflow/rules/frontier.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/studies.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/benchmark.smk"


rule all:
    default_target: True
    input:
        rules.figures.input,
        rules.studies.input,
        rules.tables.input,
        rules.metrics.input,
        rules.benchmark.input,
        rules.frontier.input,


# A dataset turned off or a variant removed leaves no results that look current: they move to
# results/disabled/{name}/.
onsuccess:
    for src, dst in layout.retire_results([*NAMES, *(["frontier"] if FRONTIER_SOURCES else [])]):
        print(f"kdreg: {src} -> {dst} (no enabled dataset or variant makes it)")
