"""`kdreg check`: validate params.yaml and report, per enabled dataset, which inputs are present, missing or
corrupt, without training anything."""
from __future__ import annotations

from pathlib import Path

from kdreg import layout, variants
from kdreg.config import find_schema, load_params
from kdreg.datasets import kind_of
from kdreg.manifest import verify_group


def _status(path: Path, loader) -> tuple[str, str]:
    if not path.exists():
        return "missing", ""
    try:
        loader(path)
    except (ValueError, OSError) as err:
        return "CORRUPT", str(err)
    return "ok", ""


def check(params_path: str = "params.yaml", root: str = ".") -> tuple[list[str], int]:
    """Lines of a report and the number of problems found (bad params count as one and stop the check)."""
    try:
        params = load_params(Path(root) / params_path)
        schema = find_schema(Path(root) / params_path)
        resolved = variants.resolve(params, schema, params_path) if schema else {"": params}
    except (ValueError, FileNotFoundError) as err:
        return [f"params: INVALID\n{err}"], 1
    lines = [f"params: {params_path} is valid ({len(params['methods'])} methods, {params['seeds']} seeds, "
             f"noise levels {params['noise']['levels']})"]
    for name, overrides in (params.get("variants") or {}).items():
        runs = [d for d in layout.enabled_datasets(params) if variants.runs_for(params, name, d)]
        lines.append(f"variant {name}: " + ", ".join(f"{k} = {v}" for k, v in overrides.items()) +
                     f" -> results {', '.join(variants.result_name(d, name) for d in runs) or '(no enabled dataset)'}")
    suites = {v: resolved[v] for v in variants.benchmark_variants(params) if v in resolved}
    for v, suite in suites.items():
        lines.append(f"benchmark: {', '.join(variants.benchmark_datasets(params))} -> results "
                     f"{', '.join(variants.result_name(d, v) for d in variants.benchmark_datasets(params))}"
                     f" ({suite['seeds']} seeds, {suite['noise']['kind']} noise)")
    if len(resolved) > 1 and not schema:
        lines.append("variants: not validated (no workflow/schemas/ beside the params file)")
    problems, missing = 0, []
    runs = [(dataset, params) for dataset in layout.enabled_datasets(params)]
    runs += [(dataset, suite) for suite in suites.values() for dataset in variants.benchmark_datasets(params)]
    for dataset, p in runs:
        cfg = p["datasets"][dataset]
        kind = kind_of(dataset, cfg)
        suite_note = f" (benchmark, {p['noise']['kind']} noise)" if p is not params else ""
        lines.append(f"dataset {dataset}{suite_note}: kind {kind.name}, task {kind.task}, "
                     f"headline metric {kind.metric}")
        if kind.name == "table":
            lines += [f"  {line}" for line in _resolved_table(p, dataset)]
        if kind.report:
            report, found = kind.source_report(cfg, Path(root))
            lines += [f"  {line}" for line in report]
            problems += found
        for name in layout.units(p, dataset):
            problems += _check_unit(p, name, Path(root), lines, missing)
    # Before the first run nothing is built, and that is no problem; once anything is, a missing file or group is
    # lost work (deleted, or set aside by a fix), and the same command rebuilds it.
    started = any((Path(root) / d).is_dir() and any((Path(root) / d).iterdir()) for d in ("data", "models"))
    if missing and started:
        problems += len(missing)
        lines.append(f"{len(missing)} made file(s) or trained group(s) missing:")
        lines += [f"  {m}" for m in missing]
        lines.append("  rebuild them, and what learned from them: snakemake --cores all all")
    elif missing:
        lines.append(f"nothing built yet ({len(missing)} files and trained groups to make): snakemake --cores all all "
                     "(or `dvc pull` where a DVC remote holds them)")
    lines.append("no problems found" if problems == 0 else f"{problems} problem(s): follow the fix given with each "
                 "(the pipeline, snakemake --cores all all, remakes whatever is deleted)")
    return lines, problems


def _resolved_table(params: dict, dataset: str) -> list[str]:
    """The features, split sizes and model sizes the run will resolve (as its config.yaml records them)."""
    from kdreg.inputs import default_models
    from kdreg.models import mlp_parameters
    from kdreg.methods import get_method
    from kdreg.tabular import table_dataset
    cfg, notices = params["datasets"][dataset], []
    ds = table_dataset(dataset, cfg, notice=notices.append)
    n_in = ds.x_dev.shape[1]
    lines = [f"note: {message.split(': ', 2)[-1]}" for message in notices]
    lines += [f"features ({n_in}): {', '.join(ds.feature_names)}",
             f"splits: train {int((~ds.val).sum())}, val {int(ds.val.sum())}, test {len(ds.y_test)} rows; "
             f"target {cfg['target']}"]
    heads = max(get_method(m).heads for m in params["methods"])
    for role, i, h in (("teacher", 0, 1), ("student", 1, heads)):
        model = {**default_models(n_in)[i], **(cfg.get(role, {}).get("model") or {})}
        lines.append(f"{role}: MLP {n_in}-{'-'.join(map(str, model['hidden']))}-{ds.label_dim} ({model['activation']}"
                     f"), {mlp_parameters(n_in, model['hidden'], ds.label_dim):,} parameters"
                     + (f" ({mlp_parameters(n_in, model['hidden'], ds.label_dim, 2):,} with two heads)"
                        if h == 2 else ""))
    return lines


def _check_unit(params: dict, name: str, root: Path, lines: list[str], missing: list[str]) -> int:
    """Report one unit's data, noisy sets and trained groups; the missing ones are appended to ``missing``."""
    from kdreg.data import Dataset
    from kdreg.noise import NoisyLabels
    problems = 0
    paths = layout.Paths(params, name)
    if "." in name:  # one fold of a leave-one-person-out dataset
        lines.append(f"  fold {name}:")
    state, detail = _status(root / paths.clean, Dataset.load)
    lines.append(f"  {paths.clean}: {state}")
    if state == "missing":
        missing.append(paths.clean)
    if state == "CORRUPT":
        problems += 1
        lines.append(f"    {detail}")
    counts = {"ok": 0, "missing": 0, "CORRUPT": 0}
    for group in range(len(paths.groups)):
        for level, seed in paths.groups[group]:
            path = root / paths.noisy(level, seed)
            s, detail = _status(path, NoisyLabels.load)
            counts[s] += 1
            if s == "missing":
                missing.append(paths.noisy(level, seed))
            if s == "CORRUPT":
                problems += 1
                lines.append(f"  {paths.noisy(level, seed)}: CORRUPT\n    {detail}")
    lines.append(f"  noisy labels: {counts['ok']} ok, {counts['missing']} to make, {counts['CORRUPT']} corrupt")
    groups = paths.all_group_dirs(params["methods"])
    present = [g for g in groups if (root / g).is_dir()]
    missing += [g for g in groups if g not in present]
    damaged = 0
    for g in present:
        try:
            verify_group(root / g)
        except ValueError as err:
            damaged += 1
            lines.append(f"  {g}: CORRUPT\n    {err}")
    lines.append(f"  trained groups: {len(present)} of {len(groups)} present, {damaged} damaged")
    return problems + damaged
