"""Atomic writes, checked reads, and the provenance saved beside every run."""
from __future__ import annotations

import functools
import hashlib
import io
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np


@contextmanager
def atomic_path(path):
    """Yield a temporary path in ``path``'s directory and rename it into place only if the block succeeds,
    so a killed job never leaves a file that looks complete."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; shared filesystems need the user's umask
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def config_key(obj) -> str:
    """8 hex digits of the SHA-256 of ``obj`` as canonical JSON: names settings in paths and training states."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:8]


def sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def checksum_path(path) -> Path:
    return Path(f"{path}.sha256")


def save_npz(path, checksum: bool = False, **arrays) -> None:
    """Write an ``.npz`` atomically; with ``checksum``, also record its SHA-256 in ``{path}.sha256``."""
    with atomic_path(path) as tmp:
        _write_npz(tmp, arrays)
        digest = sha256(tmp) if checksum else None
    if digest:
        with atomic_path(checksum_path(path)) as tmp:
            tmp.write_text(f"{digest}  {Path(path).name}\n")


# A fixed timestamp and mode per member: np.savez stamps the wall clock into the zip, so equal arrays would give
# unequal bytes (and a new DVC hash) on every run.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def _write_npz(path, arrays: dict) -> None:
    """An uncompressed ``.npz`` that ``np.load`` reads, whose bytes depend on the arrays alone."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, value in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_EPOCH)
            info.external_attr = 0o644 << 16
            with zf.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(value), allow_pickle=False)


def verify_checksum(path) -> None:
    """Compare a file with the SHA-256 recorded beside it (if one is)."""
    recorded = checksum_path(path)
    if not recorded.exists():
        return
    fields = recorded.read_text().split()
    expected = fields[0] if fields else ""
    actual = sha256(path)
    if actual != expected:
        raise ValueError(f"{path} does not match the checksum recorded in {recorded} (sha256 {actual[:12]}…, "
                         f"recorded {expected[:12]}…): the file was changed or damaged after it was made. "
                         f"Delete both (rm '{path}' '{recorded}') and run the pipeline again (snakemake --cores all "
                         "all): it remakes them and retrains what learned from them")


def load_npz(path, required=(), verify: bool = True) -> dict[str, np.ndarray]:
    """Read every array of an ``.npz``; refuse a missing, truncated, incomplete or checksum-mismatched file with a
    clear message."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file; run the pipeline (snakemake --cores all all), which makes "
                                "every missing file")
    if verify:
        verify_checksum(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as err:
        raise ValueError(f"{path} is truncated or corrupt ({err}); delete it and rerun the step that makes it") from None
    missing = [k for k in required if k not in arrays]
    if missing:
        raise ValueError(f"{path} lacks arrays {missing} (has {sorted(arrays)}); it was not written by this "
                         "version of kdreg: delete it and rerun the step that makes it")
    return arrays


def _finite_or_none(obj):
    """JSON has no NaN: undefined values (a precision with nothing rejected) are written as null."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite_or_none(v) for v in obj]
    if isinstance(obj, np.generic):
        return _finite_or_none(obj.item())
    return obj


def save_json(path, obj) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(_finite_or_none(obj), indent=2, sort_keys=True) + "\n")


def save_yaml(path, obj) -> None:
    import yaml
    with atomic_path(path) as tmp:
        tmp.write_text(yaml.safe_dump(_finite_or_none(obj), sort_keys=False))


def git_commit() -> str | None:
    """The commit of the kdreg checkout this code runs from, ``+dirty`` if it has local changes; None outside git."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty else "")


@functools.lru_cache(maxsize=1)
def _provenance() -> tuple:
    import torch

    from kdreg import __version__
    return (("kdreg", __version__), ("git_commit", git_commit()), ("torch", str(torch.__version__)),
            ("numpy", np.__version__), ("python", platform.python_version()))


def provenance() -> dict:
    """What produced a result: code commit and the versions that can change numbers (computed once per
    process: a group job saves many runs)."""
    return dict(_provenance())


def save_checkpoint(path, state: dict) -> None:
    """Write a checkpoint atomically as safetensors (:mod:`kdreg.checkpoint`): no pickle, and equal states give
    equal bytes."""
    from kdreg.checkpoint import to_bytes
    data = to_bytes(state)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def load_checkpoint(path, map_location="cpu", required: tuple = ()) -> dict:
    """The one loader of every checkpoint kdreg reads (:func:`kdreg.checkpoint.load`): nothing in a file runs."""
    from kdreg.checkpoint import load
    return load(path, map_location, required)


@contextmanager
def output_to(log: str | None):
    """Send stdout and stderr (Python's and the C libraries') to ``log``; yield a function that reports a line
    on the console as well, so the user sees why a pipeline step failed without opening its log."""
    if log is None:
        yield lambda line: print(line, file=sys.stderr)
        return
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log, "w") as f:
        os.dup2(f.fileno(), 1)
        os.dup2(f.fileno(), 2)

        def report(line: str) -> None:
            print(line, file=sys.stderr, flush=True)
            os.write(saved[1], f"{line}\n".encode())
        try:
            yield report
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
