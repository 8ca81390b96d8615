"""params.yaml: loading, schema validation, and the per-run configs cut from it."""
from __future__ import annotations

import re
from pathlib import Path

import yaml

SCHEMA_RELPATH = Path("workflow/schemas/params.schema.yaml")


def find_schema(params_path) -> Path | None:
    """The schema beside a checkout's params.yaml (the package itself ships without the workflow)."""
    for base in (Path(params_path).resolve().parent, Path.cwd()):
        if (base / SCHEMA_RELPATH).exists():
            return base / SCHEMA_RELPATH
    return None


class _StrictLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (plain YAML keeps the last silently)."""

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is given twice (lines {seen[key] + 1} and {key_node.start_mark.line + 1}); "
                    "keep one", key_node.start_mark)
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep)


def load_yaml(path) -> dict:
    """A params file as a dict; ValueError naming the file and line for invalid YAML or a duplicated key."""
    path = Path(path)
    try:
        data = yaml.load(path.read_text(), Loader=_StrictLoader)
    except yaml.YAMLError as err:
        raise ValueError(f"{path} is not valid YAML: {err}") from None
    if not isinstance(data, dict):
        # Snakemake would say only "keys at top level": name the file, what it holds instead, and the way back.
        kind = "list" if isinstance(data, list) else type(data).__name__
        what = "is empty" if data is None else f"holds a YAML {kind}, not a mapping"
        raise ValueError(f"{path} {what}; it must be a mapping of keys like the committed params.yaml's (device, "
                         f"seeds, noise, methods, datasets, ...); restore it with `git checkout {path}` and edit "
                         "from there")
    return data


DEVICES = re.compile(r"auto|cpu|cuda(:[0-9]+)?")  # what kdreg.models.resolve_device runs on
NAME = re.compile(r"[a-z][a-z0-9_]*")  # a dataset name is a file name, a wildcard ([a-z0-9_]+) and a metric key


def _name_problem(name) -> str | None:
    """Why dataset ``name`` cannot be used, with a name that can: said before the schema's bare regex."""
    if NAME.fullmatch(str(name)):
        return None
    import unicodedata
    ascii_ = unicodedata.normalize("NFKD", str(name)).encode("ascii", "ignore").decode().lower()
    fixed = re.sub(r"[^a-z0-9_]+", "_", ascii_).strip("_")
    fixed = fixed if re.match(r"[a-z]", fixed) else f"data_{fixed}".rstrip("_")
    return (f"datasets: the dataset name {name!r} is not allowed: it becomes file names, workflow wildcards and "
            "metric keys, so it must be lowercase ASCII letters, digits and underscores, starting with a letter; "
            f"rename it (e.g. to {fixed}), and wherever else params.yaml names it")


def _first_problems(params: dict) -> list[str]:
    """Values the schema would refuse only with a bare regex (and its other errors in tow): said in words first."""
    problems = [p for p in map(_name_problem, params.get("datasets") or {}) if p]
    device = params.get("device", "auto")
    if isinstance(device, str) and not DEVICES.fullmatch(device):
        problems.append(device_problem(device))
    return problems


def validate_params(params: dict, schema_path, source: str = "params") -> dict:
    """Validate against the JSON schema, filling in its defaults; raise ValueError naming the offending key."""
    import jsonschema

    first = _first_problems(params) if isinstance(params, dict) else []
    if first:
        raise ValueError(f"{source}:\n  " + "\n  ".join(first))

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


def _string_values(obj, key=""):
    if isinstance(obj, str):
        yield key, obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _string_values(v, f"{key}.{k}" if key else str(k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _string_values(v, f"{key}.{i}")


def _no_cuda() -> str | None:
    """Why this machine cannot run CUDA, or None. Read from files where that settles it: importing torch costs
    a second at every start, so only a machine that looks CUDA-capable asks torch itself."""
    import importlib.util
    spec = importlib.util.find_spec("torch")
    version = Path(spec.origin).parent / "version.py" if spec and spec.origin else None
    if version is not None and version.exists():
        match = re.search(r"^cuda\b[^=]*=\s*(.+)$", version.read_text(), flags=re.M)
        if match and match.group(1).strip() == "None":
            return "the installed torch is a CPU-only build"
    if not Path("/proc/driver/nvidia/version").exists() and not any(Path("/dev").glob("nvidia[0-9]*")):
        return "this machine has no NVIDIA GPU driver"
    import torch
    return None if torch.cuda.is_available() else "torch finds no usable CUDA device here"


def _cuda_count() -> int:
    import torch
    return torch.cuda.device_count()


def device_problem(device: str) -> str | None:
    """Why ``device`` cannot run on this machine: not a device kdreg runs on, or CUDA where there is none."""
    if not DEVICES.fullmatch(device):
        why = _no_cuda()
        here = f"cpu only ({why})" if why else f"cpu and cuda:0..{_cuda_count() - 1}"
        return (f"device: {device!r} is not a device kdreg runs on; it takes auto, cpu, cuda or cuda:N, and this "
                f"machine has {here}; set device: auto (the GPU where a job finds one, else the CPU) or cpu")
    if not device.startswith("cuda"):
        return None
    why = _no_cuda()
    if why == "the installed torch is a CPU-only build":
        return (f"device: {device}, but {why}; this machine has only the CPU: set device: auto (the GPU where there "
                "is one, else the CPU) or cpu, or install torch's CUDA build")
    if why:
        return (f"device: {device}, but {why}; set device: auto, which uses the GPU where a job finds one (e.g. on "
                "cluster nodes) and the CPU elsewhere, or cpu")
    count = _cuda_count()
    if ":" in device and int(device.split(":")[1]) >= count:
        return (f"device: {device}, but this machine has {count} CUDA device(s), cuda:0..cuda:{count - 1}; set "
                "device: auto, cuda (the first) or cpu")
    return None


def check_params(params: dict, source: str = "params") -> dict:
    """Cross-key rules a JSON schema cannot state, and inputs that can be checked before any job runs."""
    problems = []
    datasets = params.get("datasets", {})
    enabled = [name for name, cfg in datasets.items() if cfg.get("enabled")]
    if not enabled:
        problems.append("datasets: no dataset is enabled; set datasets.sinusoid.enabled: true")
    for key, value in _string_values(params):
        if any(ord(c) < 32 for c in value):
            problems.append(f"{key}: {value!r} holds a control character (a newline?); remove it")
    from kdreg.noise import level_tag
    tags = {}
    for level in params.get("noise", {}).get("levels", []):
        if level_tag(level) in tags:
            problems.append(f"noise.levels: {tags[level_tag(level)]} and {level} are one level in every path and "
                            f"metric key (p{level_tag(level)}); remove one")
        tags.setdefault(level_tag(level), level)
    problem = device_problem(str(params.get("device", "auto")))
    if problem:
        problems.append(problem)
    from kdreg.datasets import kind_of
    for name in enabled:  # each kind's own quick check of its source: a missing, incomplete or unreadable copy
        problems += kind_of(name, datasets[name]).problems(name, datasets[name])
    fig = params.get("figures", {})
    levels = [float(v) for v in params.get("noise", {}).get("levels", [])]
    if "fits_level" in fig and float(fig["fits_level"]) not in levels:
        problems.append(f"figures.fits_level: {fig['fits_level']} is not one of noise.levels {levels}")
    if "fits_seed" in fig and "seeds" in params and fig["fits_seed"] >= params["seeds"]:
        problems.append(f"figures.fits_seed: {fig['fits_seed']} is not below seeds ({params['seeds']})")
    if problems:
        raise ValueError(f"{source}:\n  " + "\n  ".join(problems))
    return params


def load_params(path="params.yaml", schema=None) -> dict:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such params file; run from the kdreg checkout or pass its path")
    params = load_yaml(path)
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
    # a refinement round keeps by TOR's mask: how a student uses the mask (mode) does not change the teacher
    tor = {k: v for k, v in (params["loss_options"].get("tor") or {}).items() if k != "mode"}
    return {**teacher, "tor": tor}


def student_config(params: dict, dataset: str, method: str | None = None) -> dict:
    """Everything one student run reads, frozen beside its outputs. With ``method``, only that method's loss
    options are kept, and ``predict_head`` only for a two-headed method, so changing a setting another method
    reads leaves this one's runs valid."""
    options = params["loss_options"]
    config = {**params["datasets"][base_name(dataset)]["student"]}
    if method is not None:
        from kdreg.methods import get_method
        options = {k: v for k, v in options.items() if k in get_method(method).sections}
    if method is None or get_method(method).heads == 2:
        config["predict_head"] = params["predict_head"]
    return {**config, "loss_options": options}


def width_config(config: dict, width: int) -> dict:
    """A student config with one hidden layer of ``width`` units, the rest kept (the small-model frontier's)."""
    return {**config, "model": {**(config.get("model") or {}), "hidden": [int(width)]}}
