"""params.yaml: loading, schema validation, and the per-run configs cut from it."""
from __future__ import annotations

import math
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


def load_yaml(path) -> dict:
    """A params file as a dict, read within kdreg.yamlfile's limits; ValueError naming the file and line for a
    file too large or not UTF-8, invalid YAML, a duplicated key, or aliases, lists or nesting past a limit."""
    from kdreg.yamlfile import read_yaml
    data = read_yaml(path)
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


MAX_VARIANTS = 200  # each is validated, checked and planned at every Snakemake start; the committed file has 21


def _first_problems(params: dict) -> list[str]:
    """Values the schema would refuse only with a bare regex (and its other errors in tow), or pass slowly (every
    variant is validated on its own): said in words first."""
    problems = [p for p in map(_name_problem, params.get("datasets") or {}) if p]
    variants = params.get("variants")
    if isinstance(variants, dict) and len(variants) > MAX_VARIANTS:
        problems.append(f"variants: {len(variants)} variants; a params file may hold at most {MAX_VARIANTS} (each "
                        "one is validated and planned at every Snakemake start): remove some, or run them from a "
                        "second params file (snakemake --configfile other.yaml)")
    device = params.get("device", "auto")
    if isinstance(device, str) and not DEVICES.fullmatch(device):
        problems.append(device_problem(device))
    return problems


def _deepest(error):
    """A oneOf's error says only that no branch matched; the branch that matched furthest says why (the deepest
    of its errors: an MLP's layer past the width limit rather than the image model's missing kind)."""
    while error.context:
        deepest = max(error.context, key=lambda e: len(e.absolute_path))
        if len(deepest.absolute_path) <= len(error.absolute_path):
            break
        error = deepest
    return error


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
    errors = sorted(map(_deepest, extended(schema).iter_errors(params)), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"  {'.'.join(map(str, e.absolute_path)) or '(top level)'}: {e.message}" for e in errors[:10]]
        raise ValueError(f"{source} does not match {schema_path}:\n" + "\n".join(lines) +
                         "\nFix these keys (the schema lists what each accepts).")
    return params


def _values(obj, kind, key=""):
    """``(dotted key, value)`` of every value of type ``kind`` in ``obj``, at any depth."""
    if isinstance(obj, kind) and not isinstance(obj, bool):
        yield key, obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _values(v, kind, f"{key}.{k}" if key else str(k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _values(v, kind, f"{key}.{i}")


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


def _model_problem(name: str, role: str, cfg: dict, kind) -> str | None:
    """Why ``datasets.<name>.<role>.model`` cannot train on this dataset's inputs; None when it can."""
    key, model = f"datasets.{name}.{role}.model", (cfg.get(role) or {}).get("model") or {}
    image = model.get("kind", "mlp") != "mlp"
    if image and not kind.images:
        return (f"{key}: kind {model['kind']} is an image model, and {name}'s inputs are not images; give an MLP, "
                f"e.g. {key}: {{hidden: [32, 32], activation: tanh}}")
    if kind.images and not image:
        return (f"{key}: an MLP cannot read {name}'s images; give an image model, e.g. {key}: {{kind: lenet}} or "
                "{kind: resnet_preact, depth: 8}")
    from kdreg.rules import resnet_depth_problem
    resnet = model.get("kind") == "resnet_preact" and "depth" in model
    problem = resnet_depth_problem(model["depth"]) if resnet else None
    return f"{key}.depth: {problem}; set one of those" if problem else None


def _teacher_kind_problems(name: str, teacher: dict, kind) -> list[str]:
    """The teacher kind's own rules (kdreg.teacher, kdreg.gbdt), said before any job runs."""
    key, teacher_kind, problems = f"datasets.{name}.teacher", teacher.get("kind", "network"), []
    if teacher_kind not in ("ensemble", "auto") and teacher.get("ensemble_size", 1) != 1:
        problems.append(f"{key}.ensemble_size: {teacher['ensemble_size']} needs teacher.kind: ensemble (kind "
                        f"{teacher_kind} is one model); set kind: ensemble or remove ensemble_size")
    if teacher_kind != "auto" and teacher.get("auto_kinds"):
        problems.append(f"{key}.auto_kinds: the kinds kind auto chooses from, but teacher.kind is {teacher_kind}; "
                        "set kind: auto or remove auto_kinds")
    if teacher_kind not in ("gbdt", "auto") and teacher.get("gbdt"):
        problems.append(f"{key}.gbdt: settings of boosted trees, but teacher.kind is {teacher_kind}; set kind: gbdt "
                        "or remove them")
    from kdreg.teacher_kinds import AUTO_KINDS, tree_folds
    candidates = teacher.get("auto_kinds") or AUTO_KINDS
    uses_trees = teacher_kind == "gbdt" or (teacher_kind == "auto" and "gbdt" in candidates and not kind.images)
    if uses_trees and teacher.get("refine_rounds") and tree_folds(teacher).get("cross_fit", 1) == 1:
        problems.append(f"{key}.cross_fit: a gbdt teacher's refinement needs out-of-fold predictions (trees fit "
                        "their own training rows); set gbdt.cross_fit: 5 (the trees' own folds) or cross_fit: 5")
    if (teacher.get("gbdt") or {}).get("cross_fit") and not uses_trees:
        problems.append(f"{key}.gbdt.cross_fit: the trees' own folds, but no tree teacher trains here (kind "
                        f"{teacher_kind}); remove it or use kind gbdt or auto with gbdt")
    if teacher_kind == "auto" and kind.images and teacher.get("auto_kinds") == ["gbdt"]:
        problems.append(f"{key}.auto_kinds: gbdt alone, and {name}'s inputs are images (trees read tables); add "
                        "network or ensemble")
    if teacher.get("refine_readmit") and not teacher.get("refine_rounds"):
        problems.append(f"{key}.refine_readmit: it acts on refinement rounds, and refine_rounds is 0; set "
                        "refine_rounds: 1 or remove refine_readmit")
    if teacher.get("refine_readmit") and kind.images:
        problems.append(f"{key}.refine_readmit: it finds rejected regions among a table's rows, and {name}'s "
                        "inputs are images; remove refine_readmit")
    if teacher_kind == "gbdt":
        if kind.images:
            problems.append(f"{key}.kind: gbdt reads tables, and {name}'s inputs are images; use kind network or "
                            "ensemble")
        for loss_key in ("loss", "refine_loss"):
            if teacher.get(loss_key) not in (None, "mse"):
                problems.append(f"{key}.{loss_key}: {teacher[loss_key]} is a network's loss; a gbdt teacher takes "
                                f"teacher.gbdt.loss (squared_error | absolute_error | quantile): set {loss_key}: mse")
    return problems


def check_params(params: dict, source: str = "params") -> dict:
    """Cross-key rules a JSON schema cannot state, and inputs that can be checked before any job runs."""
    problems = []
    datasets = params.get("datasets", {})
    enabled = enabled_datasets(params)
    if not enabled:
        problems.append("datasets: no dataset is enabled; set datasets.sinusoid.enabled: true")
    for key, value in _values(params, str):
        if any(ord(c) < 32 for c in value):
            problems.append(f"{key}: {value!r} holds a control character (a newline?); remove it")
    # YAML's .nan passes every bound of the schema (it compares false), .inf where there is none
    problems += [f"{key}: {value} is not a finite number; give one" for key, value in _values(params, float)
                 if not math.isfinite(value)]
    from kdreg.rules import tor_mode_problem
    tor = (params.get("loss_options") or {}).get("tor") or {}
    if problem := tor_mode_problem(tor.get("mode"), tor.get("threshold")):
        problems.append(f"loss_options.tor: {problem}, or set loss_options.tor.threshold: mixture")
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
        kind = kind_of(name, datasets[name])
        problems += kind.problems(name, datasets[name])
        problems += [p for role in ("teacher", "student") if (p := _model_problem(name, role, datasets[name], kind))]
        problems += _teacher_kind_problems(name, datasets[name].get("teacher") or {}, kind)
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


def enabled_datasets(params: dict) -> list[str]:
    return [name for name, cfg in (params.get("datasets") or {}).items() if cfg.get("enabled")]


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
