"""params.yaml: loading, schema validation, and the per-run configs cut from it."""
from __future__ import annotations

import json
from pathlib import Path

import yaml

SCHEMA_RELPATH = Path("workflow/schemas/params.schema.yaml")


def find_schema(params_path) -> Path | None:
    """The schema beside a checkout's params.yaml (the package itself ships without the workflow)."""
    for base in (Path(params_path).resolve().parent, Path.cwd()):
        if (base / SCHEMA_RELPATH).exists():
            return base / SCHEMA_RELPATH
    return None


def validate_params(params: dict, schema_path, source: str = "params") -> dict:
    """Validate against the JSON schema, filling in its defaults; raise ValueError naming the offending key."""
    import jsonschema

    schema = yaml.safe_load(Path(schema_path).read_text())
    validator_cls = jsonschema.validators.validator_for(schema)
    # Fill defaults the way Snakemake's validate() does, so both see the same params.
    def set_defaults(validator, properties, instance, schema_):
        if isinstance(instance, dict):
            for key, sub in properties.items():
                if "default" in sub:
                    instance.setdefault(key, sub["default"])
        yield from validator_cls.VALIDATORS["properties"](validator, properties, instance, schema_)

    extended = jsonschema.validators.extend(validator_cls, {"properties": set_defaults})
    errors = sorted(extended(schema).iter_errors(params), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"  {'.'.join(map(str, e.absolute_path)) or '(top level)'}: {e.message}" for e in errors[:10]]
        raise ValueError(f"{source} does not match {schema_path}:\n" + "\n".join(lines) +
                         "\nFix these keys (the schema lists what each accepts).")
    return params


def check_params(params: dict, source: str = "params") -> dict:
    """Cross-key rules a JSON schema cannot state."""
    problems = []
    enabled = [name for name, cfg in params.get("datasets", {}).items() if cfg.get("enabled")]
    if not enabled:
        problems.append("datasets: no dataset is enabled; set datasets.sinusoid.enabled: true")
    for name, cfg in params.get("datasets", {}).items():
        if cfg.get("enabled") and cfg.get("kind") == "table" and not Path(cfg["path"]).exists():
            problems.append(f"datasets.{name}.path: {cfg['path']} does not exist; fix the path (relative to the "
                            "directory Snakemake runs in)")
        if "." in name:
            problems.append(f"datasets.{name}: dataset names may not contain '.'")
    pie = params.get("datasets", {}).get("multipie", {})
    if pie.get("enabled"):
        from kdreg.multipie import quick_check
        try:
            quick_check(pie.get("root"))
        except FileNotFoundError as err:
            problems.append(str(err))
    gaze = params.get("datasets", {}).get("mpiigaze", {})
    if gaze.get("enabled"):
        for key in ("archive", "root"):
            if gaze.get(key) and not Path(gaze[key]).exists():
                problems.append(f"datasets.mpiigaze.{key}: {gaze[key]} does not exist; fix the path or set it to "
                                "null to download the archive")
    fig = params.get("figures", {})
    levels = [float(v) for v in params.get("noise", {}).get("levels", [])]
    if "fits_level" in fig and float(fig["fits_level"]) not in levels:
        problems.append(f"figures.fits_level: {fig['fits_level']} is not one of noise.levels {levels}")
    if "fits_seed" in fig and "seeds" in params and fig["fits_seed"] >= params["seeds"]:
        problems.append(f"figures.fits_seed: {fig['fits_seed']} is not below seeds ({params['seeds']})")
    if problems:
        raise ValueError(f"{source}: " + "; ".join(problems))
    return params


def load_params(path="params.yaml", schema=None) -> dict:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such params file; run from the kdreg checkout or pass its path")
    try:
        params = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ValueError(f"{path} is not valid YAML: {err}") from None
    schema = schema or find_schema(path)
    if schema:
        validate_params(params, schema, str(path))
    return check_params(params, str(path))


def seeds(params: dict) -> list[int]:
    return list(range(int(params["seeds"])))


def base_name(unit: str) -> str:
    """``"mpiigaze.p03" -> "mpiigaze"``: a fold of a dataset runs as its own unit with the dataset's settings."""
    return unit.split(".", 1)[0]


def teacher_config(params: dict, dataset: str) -> dict:
    """Everything one teacher run reads, frozen beside its outputs."""
    teacher = params["datasets"][base_name(dataset)]["teacher"]
    if not teacher.get("refine_rounds"):  # TOR options matter to a teacher only when it refines
        return dict(teacher)
    return {**teacher, "tor": params["loss_options"].get("tor", {})}


def student_config(params: dict, dataset: str, method: str | None = None) -> dict:
    """Everything one student run reads, frozen beside its outputs. With ``method``, only that method's loss
    options are kept, so changing another method's options leaves this one's runs valid."""
    options = params["loss_options"]
    if method is not None:
        sections = {"tor_multitask": ("tor", "multitask", "tor_multitask")}.get(method, (method,))
        options = {k: v for k, v in options.items() if k in sections}
    return {**params["datasets"][base_name(dataset)]["student"], "loss_options": options,
            "predict_head": params["predict_head"]}


def read_config(text_or_path: str) -> dict:
    """A run config given as a YAML/JSON file path or an inline JSON object."""
    s = text_or_path.strip()
    if s.startswith("{"):
        return json.loads(s)
    path = Path(text_or_path)
    if not path.exists():
        raise FileNotFoundError(f"config {text_or_path!r} is neither inline JSON nor an existing file")
    return yaml.safe_load(path.read_text()) or {}
