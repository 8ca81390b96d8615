"""`kdreg check`: validate params.yaml and report which made files and trained groups are present, missing or
corrupt, without training anything: every enabled dataset under the default params, each variant and the
benchmark suite, with their teacher, student and small-model frontier groups."""
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


def check(params_path: str = "params.yaml", root=None) -> tuple[list[str], int]:
    """Lines of a report and the number of problems found (bad params count as one and stop the check).

    ``data/`` and ``models/`` are read under ``root``, by default the params file's folder (the checkout), so
    the check gives the same answer from any directory; given ``root``, a relative ``params_path`` is read there."""
    params_file = Path(params_path) if root is None else Path(root) / params_path
    root = params_file.parent if root is None else Path(root)
    try:
        params = load_params(params_file)
        schema = find_schema(params_file)
        resolved = variants.resolve(params, schema, params_path) if schema else {"": params}
        names = variants.result_names(params, resolved)
        sources = variants.frontier_sources(params, names, params_path)
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
    frontier = params.get("frontier") or {}
    members = variants.frontier_members(frontier) if sources else []
    problems, found = 0, Findings(root)
    for name, (dataset, p) in names.items():
        cfg = p["datasets"][dataset]
        kind = kind_of(dataset, cfg)
        variant = variants.split_name(name)[1]
        note = (f" (benchmark, {p['noise']['kind']} noise)" if variant in suites else
                f" (variant {variant})" if variant else "")
        lines.append(f"dataset {dataset}{note}: kind {kind.name}, task {kind.task}, headline metric {kind.metric}")
        if kind.name == "table":
            lines += [f"  {line}" for line in _resolved_table(p, dataset, root)]
        if kind.report:
            report, source_problems = kind.source_report(cfg, root)
            lines += [f"  {line}" for line in report]
            problems += source_problems
        for unit in layout.units(p, dataset):
            paths = layout.Paths(p, unit)
            chosen = paths.frontier_groups(members) if name in sources else {}
            frontier_dirs = [paths.frontier_dir(g, sel, frontier) for g, sel in chosen.items()]
            lines += _check_unit(paths, p["methods"], frontier_dirs, found)
    missing = found.where("missing")
    problems += len(found.where("CORRUPT"))
    # Before the first run nothing is built, and that is no problem; once anything is, a missing file or group is
    # lost work (deleted, or set aside by a fix), and the same command rebuilds it.
    started = any((root / d).is_dir() and any((root / d).iterdir()) for d in ("data", "models"))
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
    # Run from elsewhere, the paths above hold where the check ran, but snakemake needs the checkout's Snakefile.
    if (missing or problems) and root.resolve() != Path.cwd().resolve():
        lines.append(f"snakemake runs in the checkout: cd '{root}' before it")
    return lines, problems


def _resolved_table(params: dict, dataset: str, root: Path) -> list[str]:
    """The features, split sizes and model sizes the run will resolve (as its config.yaml records them)."""
    from kdreg.inputs import default_models
    from kdreg.models import mlp_parameters
    from kdreg.methods import get_method
    from kdreg.tabular import table_dataset
    cfg, notices = params["datasets"][dataset], []
    if cfg.get("path"):  # relative to the checkout, where the pipeline runs, not to where the check runs
        cfg = {**cfg, "path": str(root / cfg["path"])}
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


class Findings:
    """The state of every made file and trained group, each probed once: variants share data, noisy sets and
    groups, and a shared one is reported and counted once."""

    def __init__(self, root: Path):
        self.root, self.states = root, {}

    def probe(self, path: str, loader) -> tuple[str, str]:
        """(``ok``, ``missing`` or ``CORRUPT``; the problem the first time a path is found corrupt, else "")."""
        if path in self.states:
            return self.states[path][0], ""
        self.states[path] = _status(self.root / path, loader)
        return self.states[path]

    def where(self, state: str) -> list[str]:
        return [path for path, (s, _) in self.states.items() if s == state]


def _check_unit(paths: layout.Paths, methods, frontier_dirs: list[str], found: Findings) -> list[str]:
    """The report of one unit: its data, noisy sets, trained groups and frontier groups, each kind summed up."""
    from kdreg.data import Dataset
    from kdreg.noise import NoisyLabels
    lines = [f"  fold {paths.dataset}:"] if "." in paths.dataset else []  # a leave-one-person-out fold
    state, problem = found.probe(paths.clean, Dataset.load)
    lines.append(f"  {paths.clean}: {state}" + (f"\n    {problem}" if problem else ""))
    noisy = [paths.noisy(level, seed) for group in paths.groups for level, seed in group]
    for what, items, loader in (("noisy labels", noisy, NoisyLabels.load),
                                ("trained groups", paths.all_group_dirs(methods), verify_group),
                                ("frontier groups", frontier_dirs, verify_group)):
        states = []
        for item in items:
            state, problem = found.probe(item, loader)
            states.append(state)
            if problem:
                lines.append(f"  {item}: CORRUPT\n    {problem}")
        if items:
            lines.append(f"  {what}: {states.count('ok')} of {len(items)} present, {states.count('missing')} "
                         f"missing, {states.count('CORRUPT')} damaged")
    return lines
