"""Checkpoints that cannot run code and are the same bytes for the same training.

A checkpoint (a run's ``model.pt``, a job's resumable training state) is a safetensors file: every tensor of the
saved object is stored by itself, everything else (dicts, lists, strings, numbers, None) as one canonical JSON
skeleton in the header's metadata, each tensor there replaced by a reference. Loading parses JSON and raw tensor
bytes, nothing else: no pickle, so a file planted in ``models/`` or a pulled DVC cache can at worst fail to load.
torch.save archives carry a pickle and a random ``serialization_id`` (two equal trainings gave unequal files, and
DVC's hash of ``models/`` changed with every rebuild); both are gone.

Checkpoints that earlier versions wrote with torch.save still load, through ``torch.load(weights_only=True)``,
which refuses any object but tensors and plain containers.
"""
from __future__ import annotations

import json
import pickle
import re
import zipfile
from pathlib import Path

import numpy as np

META_KEY = "kdreg"          # the one metadata entry: several would be ordered by a hash map, not by us
FORMAT = 1
ZIP, PICKLE = "a zip archive that is not a checkpoint", "a Python pickle"  # what torch.save writes


def _encode(obj, tensors: dict):
    """The JSON skeleton of ``obj``; its tensors (and numpy arrays, as tensors) go into ``tensors``."""
    import torch
    if isinstance(obj, torch.Tensor):
        key = f"t{len(tensors)}"
        # a copy of its own: safetensors refuses tensors that share memory (views of one parameter)
        tensors[key] = obj.detach().to("cpu", copy=True).contiguous()
        return {"__tensor__": key}
    if isinstance(obj, np.ndarray):
        if obj.dtype == object:
            raise TypeError("a checkpoint cannot hold an object array")
        key = f"t{len(tensors)}"
        tensors[key] = torch.from_numpy(np.ascontiguousarray(obj).copy())
        return {"__ndarray__": key}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in obj):
            return {k: _encode(v, tensors) for k, v in obj.items()}
        # int keys (an optimizer's state) survive JSON only as pairs
        return {"__items__": [[_encode(k, tensors), _encode(v, tensors)] for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, tensors) for v in obj]}
    if isinstance(obj, list):
        return [_encode(v, tensors) for v in obj]
    if obj is None or isinstance(obj, (str, bool, int, float)):
        return obj
    raise TypeError(f"a checkpoint holds tensors, arrays, numbers, strings and containers, not {type(obj).__name__}")


def _decode(obj, tensors: dict):
    if isinstance(obj, list):
        return [_decode(v, tensors) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if "__tensor__" in obj:
        return tensors[obj["__tensor__"]]
    if "__ndarray__" in obj:
        return tensors[obj["__ndarray__"]].numpy()
    if "__tuple__" in obj:
        return tuple(_decode(v, tensors) for v in obj["__tuple__"])
    if "__items__" in obj:
        return {_decode(k, tensors): _decode(v, tensors) for k, v in obj["__items__"]}
    return {k: _decode(v, tensors) for k, v in obj.items()}


def to_bytes(state) -> bytes:
    """``state`` as a safetensors file's bytes: equal states give equal bytes."""
    from safetensors.torch import save
    tensors: dict = {}
    skeleton = _encode(state, tensors)
    meta = json.dumps({"format": FORMAT, "state": skeleton}, sort_keys=True, separators=(",", ":"))
    return save(tensors, metadata={META_KEY: meta})


def _what_it_holds(path: Path) -> str:
    """A few words on what a file that is not a checkpoint holds, for the refusal."""
    with open(path, "rb") as f:
        head = f.read(256)
    if not head:
        return "an empty file"
    if head.startswith(b"PK\x03\x04"):
        return ZIP
    if head[:1] == b"\x80":
        return PICKLE
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as err:
        text = head[:err.start].decode("utf-8") if err.start > len(head) - 4 else None  # a character cut at 256
    if text and text.strip() and all(c.isprintable() or c in "\t\r\n" for c in text):
        return f"text beginning {text.strip().splitlines()[0][:40]!r}"
    return "binary data"


def _is_safetensors(path: Path) -> bool:
    """A safetensors file starts with its header's length (8 bytes, little-endian) and the header's ``{``."""
    with open(path, "rb") as f:
        head = f.read(9)
    if len(head) < 9 or head[8:9] != b"{":
        return False
    if 8 + int.from_bytes(head[:8], "little") > path.stat().st_size:
        raise ValueError(f"{path} is truncated (its header is cut off); delete it and retrain")
    return True


def _load_safetensors(path: Path, map_location: str):
    from safetensors import SafetensorError, safe_open
    try:
        with safe_open(str(path), framework="pt", device=map_location) as f:
            meta = (f.metadata() or {}).get(META_KEY)
            if meta is None:
                raise ValueError(f"{path} is a safetensors file but not a kdreg checkpoint (no {META_KEY!r} "
                                 "metadata): kdreg reads only the checkpoints it writes")
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except SafetensorError as err:
        raise ValueError(f"{path} is truncated or corrupt ({err}); delete it and retrain") from None
    try:
        return _decode(json.loads(meta)["state"], tensors)
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path} has a damaged header ({type(err).__name__}: {err}); delete it and retrain") from None


def _load_torch(path: Path, map_location: str):
    """A checkpoint of an earlier kdreg (torch.save), read with weights_only: tensors and containers only."""
    import warnings

    import torch
    what = _what_it_holds(path)
    if what not in (ZIP, PICKLE):
        raise ValueError(f"{path} is not a kdreg checkpoint: it holds {what}")
    try:
        with warnings.catch_warnings():  # torch warns about the pickle protocol of files it then refuses anyway
            warnings.simplefilter("ignore")
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"GLOBAL ([\w.]+)", str(err))
        name = f" ({found.group(1)})" if found else ""
        raise ValueError(f"{path} holds Python objects{name} that a kdreg checkpoint never has; it was refused "
                         "and nothing in it ran. Delete it, or retrain to get a checkpoint kdreg wrote") from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as err:
        raise ValueError(f"{path} is truncated or corrupt, or not a checkpoint ({str(err)[:200]}); delete it and "
                         "retrain") from None


def load(path, map_location: str = "cpu", required: tuple = ()) -> dict:
    """A checkpoint as the object that was saved. ValueError naming the file for anything else: no code in any
    file runs. ``required``: top-level keys the caller needs (a model checkpoint's ``states``, say)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such checkpoint; train it first")
    if path.is_dir():
        raise ValueError(f"{path} is a directory, not a checkpoint; name its model.pt")
    state = _load_safetensors(path, map_location) if _is_safetensors(path) else _load_torch(path, map_location)
    if not isinstance(state, dict):
        raise ValueError(f"{path} is not a kdreg checkpoint: it holds a {type(state).__name__}, not a mapping")
    missing = [k for k in required if k not in state]
    if missing:
        raise ValueError(f"{path} is not a kdreg model checkpoint: it lacks {missing} (has {sorted(state)[:10]})")
    return state
