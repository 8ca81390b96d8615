"""Named variants of params.yaml, run through the same rules as the default.

    variants:
      teacher_huber: {datasets.sinusoid.teacher.loss: huber}
      gaussian_noise: {noise.kind: gaussian}

Each variant is the params with its overrides applied (dotted key paths into the params, after the schema's
defaults are filled in). Every variant is validated like params.yaml itself before any job runs. Paths are keyed
by content (:mod:`kdreg.layout`), so what two variants share (data, noise, equal teachers, students that do not
read the teacher) is one path and runs once; results are named ``{dataset}-{variant}``.
"""
from __future__ import annotations

import copy
import re

VARIANT_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
DEFAULT = "default"  # the params without overrides, where a study lists it
BENCHMARK = "benchmark"  # the suite of real tables (params.yaml ``benchmark:``), run as one variant per noise kind:
                         # benchmark_replace, benchmark_resample
SEPARATOR = "-"  # neither dataset nor variant names may hold it, so a results name splits unambiguously
# Keys a variant may not change, and why: the fix the error message offers.
FIXED = {
    "variants": "variants do not nest",
    "pipeline": "pipeline settings change how fast jobs run, never what they learn: they apply to every variant",
    "device": "the device applies to every variant",
    # read from the top-level params only, so a variant's value would be accepted and do nothing
    "studies": "studies compare variants: set them at the top level",
    "benchmark": "the benchmark suite runs beside the variants: set it at the top level",
    "frontier": "the frontier is one comparison across its sources: set it at the top level, and list the variants "
                "it reads in frontier.variants",
}
# Per-dataset settings that locate or prepare raw data once per params file (see kdreg.datasets.KINDS.prepared).
SOURCE_KEYS = ("enabled", "archive", "root", "url", "path", "kind")


def result_name(dataset: str, variant: str = "") -> str:
    """``sinusoid`` for the default params, ``sinusoid-teacher_huber`` for a variant."""
    return f"{dataset}{SEPARATOR}{variant}" if variant else dataset


def split_name(name: str) -> tuple[str, str]:
    """``"sinusoid-teacher_huber" -> ("sinusoid", "teacher_huber")``; ``"sinusoid" -> ("sinusoid", "")``."""
    dataset, _, variant = name.partition(SEPARATOR)
    return dataset, variant


def runs_for(params: dict, variant: str, dataset: str) -> bool:
    """Whether ``variant`` runs for ``dataset``: a variant that overrides ``datasets.X`` keys is about X, and
    runs for X alone; one that overrides only shared keys (noise, methods, ...) runs for every enabled dataset
    but those with their own ``overrides`` (an experiment of its own, like ``digits``)."""
    if not variant:
        return True
    if variant in benchmark_variants(params):
        return dataset in benchmark_datasets(params)
    named = {key.split(".")[1] for key in params["variants"][variant] if key.startswith("datasets.")}
    if not named:
        return not dataset_overrides(params, dataset)
    return dataset in named


def dataset_overrides(params: dict, dataset: str) -> dict:
    """``datasets.X.overrides``: top-level params (dotted keys: seeds, methods, noise.levels, ...) that dataset X
    runs under, in every variant that runs it: an experiment with its own budget beside the others."""
    cfg = (params.get("datasets") or {}).get(dataset)
    return dict(cfg.get("overrides") or {}) if isinstance(cfg, dict) else {}


def dataset_params(params: dict, dataset: str) -> dict:
    """``params`` as ``dataset`` runs under them: its ``overrides`` applied (the same params when it has none)."""
    overrides = dataset_overrides(params, dataset)
    if not overrides:
        return params
    inner = [k for k in overrides if k.split(".")[0] == "datasets"]
    if inner:
        raise ValueError(f"datasets.{dataset}.overrides: {inner} are keys of the dataset's own entry; set them in "
                         f"datasets.{dataset} itself, and keep overrides for top-level params (seeds, methods, noise)")
    return apply_overrides(params, overrides, "overrides", f"datasets.{dataset}")


def _fixed_reason(params: dict, key: str) -> str | None:
    parts = key.split(".")
    if parts[0] in FIXED:
        return FIXED[parts[0]]
    if parts[0] == "datasets" and len(parts) >= 3:
        from kdreg.datasets import kind_of
        name, setting = parts[1], parts[2]
        cfg = params.get("datasets", {}).get(name)
        if setting in SOURCE_KEYS:
            return "which datasets run, and where their data lives, apply to every variant"
        if isinstance(cfg, dict) and setting in kind_of(name, cfg).prepared:
            return f"{name}'s prepared file is made once per params file; use a second params file for other settings"
    return None


def apply_overrides(params: dict, overrides: dict, variant: str, section: str = "variants") -> dict:
    """A deep copy of ``params`` with each ``dotted.key: value`` of ``overrides`` set."""
    out = copy.deepcopy(params)
    for key, value in overrides.items():
        where = f"{section}.{variant}: {key}"
        reason = _fixed_reason(params, key)
        if reason:
            raise ValueError(f"{where} cannot be overridden ({reason}); remove it from the variant")
        *parents, last = key.split(".")
        node, walked = out, []
        for part in parents:
            walked.append(part)
            child = node.get(part) if isinstance(node, dict) else None
            if not isinstance(child, dict):
                have = sorted(node) if isinstance(node, dict) else []
                raise ValueError(f"{where}: {'.'.join(walked)} is not a section of the params (it has: "
                                 f"{', '.join(map(str, have)) or 'nothing'}); spell the key as in params.yaml")
            node = child
        if last not in node and not _open_key(parents, last):
            raise ValueError(f"{where}: {'.'.join(parents) or 'the params'} has no key {last!r} (it has: "
                             f"{', '.join(map(str, sorted(node)))}); spell the key as in params.yaml")
        node[last] = copy.deepcopy(value)
    return out


# a teacher's keys that are absent unless set (the schema gives them no default, so a default run's keys stay)
OPTIONAL_TEACHER_KEYS = ("kind", "auto_kinds", "ensemble_size", "gbdt", "refine_readmit")
OPTIONAL_STUDENT_KEYS = ("restarts",)


def _open_key(parents: list[str], last: str) -> bool:
    """Keys that are optional and absent by default: any key of a table's ``model: {}``, a ``train`` section or a
    loss's options, and a teacher's or student's optional settings."""
    return bool(parents) and (parents[-1] in ("model", "train") or parents[:1] == ["loss_options"]
                              or (parents[-1] == "teacher" and last in OPTIONAL_TEACHER_KEYS)
                              or (parents[-1] == "student" and last in OPTIONAL_STUDENT_KEYS))


def resolve(params: dict, schema_path, source: str = "params.yaml") -> dict[str, dict]:
    """``{"": params, name: variant params, ...}``, every variant validated by the schema and by
    :func:`kdreg.config.check_params`; a problem is reported with the variant and key that cause it."""
    from kdreg.config import check_params, validate_params
    out = {"": params}
    for name, overrides in (params.get("variants") or {}).items():
        if not VARIANT_NAME.match(str(name)) or name == DEFAULT or str(name).startswith(BENCHMARK):
            raise ValueError(f"{source}: variant name {name!r} must be lowercase letters, digits and underscores "
                             "(it names files and metric keys), and neither 'default' nor begin with 'benchmark'")
        if not isinstance(overrides, dict) or not overrides:
            raise ValueError(f"{source}: variants.{name} must map dotted params keys to values, e.g. "
                             "{datasets.sinusoid.teacher.loss: huber}")
        resolved = apply_overrides(params, overrides, name)
        resolved["variants"] = {}
        where = f"{source}, variant {name!r} (overrides {', '.join(overrides)})"
        validate_params(resolved, schema_path, where)
        check_params(resolved, where)
        out[name] = resolved
    for kind in benchmark_kinds(params):
        out[benchmark_variant(kind)] = benchmark_params(params, schema_path, source, kind)
    for study, names in (params.get("studies") or {}).items():
        unknown = [n for n in names if n != DEFAULT and n not in out]
        if unknown:
            raise ValueError(f"{source}: studies.{study} names {unknown}, which are not variants (have: "
                             f"{', '.join([DEFAULT, *(n for n in out if n)])}); add them under variants or fix the names")
    from kdreg.config import enabled_datasets
    for variant, p in out.items():  # a dataset's own overrides make params of their own: validated like a variant's
        for d in enabled_datasets(p):
            if dataset_overrides(p, d) and runs_for(params, variant, d):
                where = f"{source}, datasets.{d}.overrides{f' (variant {variant!r})' if variant else ''}"
                try:
                    own = dataset_params(p, d)
                except ValueError as err:
                    raise ValueError(f"{source}: {err}") from None
                validate_params(own, schema_path, where)
                check_params(own, where)
    frontier = params.get("frontier") or {}
    listed = frontier.get("variants") or [] if frontier.get("enabled") else []
    unknown = [n for n in listed if n != DEFAULT and n not in out]
    if unknown:
        raise ValueError(f"{source}: frontier.variants names {unknown}, which are not variants (have: "
                         f"{', '.join([DEFAULT, *(n for n in out if n)])}); fix the names or set frontier.enabled: false")
    frontier_sources(params, result_names(params, out), source)  # its members must be runs of its sources
    return out


def result_names(params: dict, resolved: dict[str, dict]) -> dict[str, tuple[str, dict]]:
    """``{results name: (dataset, its params)}`` of every dataset each variant of ``resolved`` (:func:`resolve`)
    runs for: ``sinusoid`` under the default params, ``sinusoid-teacher_huber`` under a variant."""
    from kdreg.config import enabled_datasets
    return {result_name(d, v): (d, dataset_params(p, d)) for v, p in resolved.items() for d in enabled_datasets(p)
            if runs_for(params, v, d)}


def study_members(study: list[str]) -> list[str]:
    """Variant names of a study, with ``default`` as the empty name of the un-overridden params."""
    return ["" if n == DEFAULT else n for n in study]


def benchmark_datasets(params: dict) -> list[str]:
    """The datasets of the benchmark suite; [] when ``benchmark.enabled`` is false."""
    suite = params.get("benchmark") or {}
    return list(suite.get("datasets") or []) if suite.get("enabled") else []


def benchmark_kinds(params: dict) -> list[str]:
    """The noise kinds the suite runs under (``benchmark.noise_kinds``); [] when it is off."""
    suite = params.get("benchmark") or {}
    return list(suite.get("noise_kinds") or ["resample"]) if suite.get("enabled") else []


def benchmark_variant(kind: str) -> str:
    """``"replace" -> "benchmark_replace"``: the suite under one noise kind, results ``{table}-benchmark_replace``."""
    return f"{BENCHMARK}_{kind}"


def benchmark_variants(params: dict) -> list[str]:
    return [benchmark_variant(k) for k in benchmark_kinds(params)]


def benchmark_params(params: dict, schema_path, source: str, kind: str) -> dict:
    """The params of the benchmark suite under noise ``kind``: ``benchmark.overrides`` and ``noise.kind`` applied,
    then ``benchmark.dataset_overrides`` in each suite dataset's entry, and exactly the suite's datasets enabled
    (they are entries of ``datasets:``, usually disabled in the default params)."""
    from kdreg.config import check_params, validate_params
    suite = params["benchmark"]
    if "noise.kind" in (suite.get("overrides") or {}):
        raise ValueError(f"{source}: benchmark.overrides sets noise.kind; list the suite's kinds in "
                         "benchmark.noise_kinds instead (e.g. [replace, resample])")
    names = list(suite.get("datasets") or [])
    unknown = [d for d in names if d not in params["datasets"]]
    if not names or unknown:
        what = f"unknown: {unknown}" if unknown else "none listed"
        raise ValueError(f"{source}: benchmark.datasets must name entries of datasets: ({what}; have: "
                         f"{', '.join(params['datasets'])}); fix the names or set benchmark.enabled: false")
    resolved = apply_overrides(params, {**(suite.get("overrides") or {}), "noise.kind": kind}, "overrides",
                               "benchmark")
    per_dataset = {f"datasets.{d}.{k}": v for d in names for k, v in (suite.get("dataset_overrides") or {}).items()}
    resolved = apply_overrides(resolved, per_dataset, "dataset_overrides", "benchmark")
    for name, cfg in resolved["datasets"].items():
        cfg["enabled"] = name in names
    resolved["variants"], resolved["studies"] = {}, {}
    where = f"{source}, benchmark (datasets {', '.join(names)}; {kind} noise)"
    validate_params(resolved, schema_path, where)
    check_params(resolved, where)
    return resolved


def frontier_members(frontier: dict) -> list[tuple[float, int]]:
    """The (noise level, seed) pairs the small-model frontier (``frontier:``) trains, level by level."""
    return [(float(level), seed) for level in frontier["levels"] for seed in range(int(frontier["seeds"]))]


def frontier_sources(params: dict, names: dict[str, tuple[str, dict]], source: str = "params.yaml") -> list[str]:
    """The small-model frontier's sources (:mod:`kdreg.frontier`): the results names of ``frontier.variants``
    whose students are MLPs (image datasets' CNN students are left out), in the order of ``names``
    (``{name: (dataset, params)}``); [] when the frontier is off. ValueError, naming the fix, when a source does
    not run a member the frontier trains: the frontier reuses the source's teachers and trains none."""
    from kdreg.noise import level_tag
    frontier = params.get("frontier") or {}
    if not frontier.get("enabled"):
        return []
    listed = {"" if v == DEFAULT else v for v in frontier["variants"]}
    sources = [n for n, (d, p) in names.items() if split_name(n)[1] in listed
               and (p["datasets"][d].get("student") or {}).get("model", {}).get("kind", "mlp") == "mlp"]
    for name in sources:
        p = names[name][1]
        levels = {level_tag(level) for level in p["noise"]["levels"]}
        unrun = [level for level in frontier["levels"] if level_tag(level) not in levels]
        more = int(frontier["seeds"]) > int(p["seeds"])
        asks = ([f"frontier.levels {unrun}, which it does not run"] if unrun else []) + (
            [f"frontier.seeds {frontier['seeds']}, more than it runs"] if more else [])
        if asks:
            raise ValueError(f"{source}: frontier: {name} has noise levels {sorted(levels)} and {p['seeds']} seeds, "
                             f"and the frontier asks for {', and '.join(asks)}; the frontier trains students at the "
                             f"teachers {name} trains, and no teacher of its own: choose frontier.levels among those "
                             f"levels and frontier.seeds at most {p['seeds']}, or remove "
                             f"{split_name(name)[1] or DEFAULT} from frontier.variants")
    return sources

