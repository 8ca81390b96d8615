"""MPIIGaze (Zhang, Sugano, Fritz & Bulling, CVPR 2015; CC BY-NC-SA 4.0): download, verification, and the
Evaluation Subset as one compact prepared file.

Archive layout (``MPIIGaze.tar.gz``, about 2.1 GB):

    MPIIGaze/Data/Normalized/pXX/dayYY.mat            struct ``data.left|right`` with ``image`` (N, 36, 60) uint8,
                                                      ``gaze`` (N, 3), ``pose`` (N, 3) Rodrigues; ``filenames`` (N,)
    MPIIGaze/Evaluation Subset/sample list for eye image/pXX.txt   lines ``dayYY/NNNN.jpg left|right``

Conversions (pitch, yaw in radians): gaze (x, y, z) → (arcsin(−y), arctan2(−x, −z)); head pose: R = Rodrigues(v),
z = R[:, 2] → (arcsin(z[1]), arctan2(z[0], z[2])). Right eyes are flipped horizontally and the yaw of gaze and
pose negated, so every sample looks like a left eye.
"""
from __future__ import annotations

import shutil
import tarfile
import urllib.request
from pathlib import Path

import numpy as np

from kdreg.io import atomic_path, checksum_path, save_npz, sha256
from kdreg.metrics import vector_to_pitchyaw

URL = "http://datasets.d2.mpi-inf.mpg.de/MPIIGaze/MPIIGaze.tar.gz"
PEOPLE = [f"p{i:02d}" for i in range(15)]
SAMPLES_PER_PERSON = 3000
NORMALIZED = "MPIIGaze/Data/Normalized"
EVAL_LISTS = "MPIIGaze/Evaluation Subset/sample list for eye image"
DOWNLOADED = "resources/mpiigaze/MPIIGaze.tar.gz"  # where the workflow downloads it (workflow/rules/datasets.smk)
LICENSE = ("MPIIGaze is licensed CC BY-NC-SA 4.0 (non-commercial); cite Zhang et al., 'Appearance-Based Gaze "
           "Estimation in the Wild', CVPR 2015")


# ------------------------------------------------------------------------------------------- conversions


def gaze_to_pitchyaw(g: np.ndarray) -> np.ndarray:
    """3-D gaze vectors ``(N, 3)`` (normalized camera space) → ``(N, 2)`` (pitch, yaw) radians."""
    return vector_to_pitchyaw(g)


def rodrigues(v: np.ndarray) -> np.ndarray:
    """Rotation vectors ``(N, 3)`` → rotation matrices ``(N, 3, 3)`` (Rodrigues' formula)."""
    v = np.asarray(v, dtype=np.float64).reshape(-1, 3)
    theta = np.linalg.norm(v, axis=1)[:, None, None]
    k = np.divide(v, theta[:, :, 0], out=np.zeros_like(v), where=theta[:, :, 0] > 0)
    kx = np.zeros((len(v), 3, 3))
    kx[:, 0, 1], kx[:, 0, 2], kx[:, 1, 2] = -k[:, 2], k[:, 1], -k[:, 0]
    kx[:, 1, 0], kx[:, 2, 0], kx[:, 2, 1] = k[:, 2], -k[:, 1], k[:, 0]
    eye = np.broadcast_to(np.eye(3), kx.shape)
    return eye + np.sin(theta) * kx + (1 - np.cos(theta)) * kx @ kx


def pose_to_pitchyaw(v: np.ndarray) -> np.ndarray:
    """Head-pose rotation vectors ``(N, 3)`` → ``(N, 2)`` (pitch, yaw) radians of the head's z axis."""
    z = rodrigues(v)[:, :, 2]
    return np.stack([np.arcsin(z[:, 1]), np.arctan2(z[:, 0], z[:, 2])], axis=1)


def flip_right_eye(images: np.ndarray, gaze: np.ndarray, pose: np.ndarray):
    """Mirror right-eye images ``(N, H, W)`` left-right and negate the yaw of gaze and pose ``(N, 2)``."""
    sign = np.array([1.0, -1.0])
    return images[:, :, ::-1], gaze * sign, pose * sign


# ------------------------------------------------------------------------------------------- download


def download(url: str, dest, chunk: int = 1 << 20) -> Path:
    """Fetch ``url`` into ``dest``, resuming a partial ``dest.part`` with an HTTP Range request; a progress bar
    on terminals. The finished file appears only when complete."""
    from tqdm.auto import tqdm
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=60)
    except OSError as err:
        raise OSError(f"cannot download {url}: {err}. Download it by hand and set datasets.mpiigaze.archive to "
                      "its path (or datasets.mpiigaze.root to the extracted folder)") from None
    with response:
        resumed = have and getattr(response, "status", 200) == 206
        total = response.headers.get("Content-Length")
        total = int(total) + (have if resumed else 0) if total else None
        with open(part, "ab" if resumed else "wb") as f, tqdm(total=total, initial=have if resumed else 0,
                                                              unit="B", unit_scale=True, disable=None,
                                                              desc=dest.name) as bar:
            while block := response.read(chunk):
                f.write(block)
                bar.update(len(block))
    part.replace(dest)
    return dest


def is_download(archive) -> bool:
    """Whether ``archive`` is where the pipeline downloads the official archive; any other path is the user's
    own copy (``datasets.mpiigaze.archive``), which deleting and downloading again would not replace."""
    return Path(archive).resolve() == Path(DOWNLOADED).resolve()


def _refused(archive, why: str, downloaded: bool, fix: str = "Delete it and download again",
             recorded=None) -> ValueError:
    """The error for a bad archive, with the fix that works for whose it is: the user's copy is not ours to
    delete, and downloading again would not replace it."""
    if downloaded:
        return ValueError(f"{archive} {why}. {fix}")
    also = f" (if you replaced it with a good copy on purpose, delete {recorded} to verify it afresh)" if recorded \
        else ""
    return ValueError(f"your archive at {archive} (datasets.mpiigaze.archive) is not a valid MPIIGaze archive: it "
                      f"{why}. Point datasets.mpiigaze.archive at a good copy of MPIIGaze.tar.gz{also}, or set it to "
                      "null to download the official archive")


def verify_archive(archive, downloaded: bool | None = None) -> None:
    """A readable tar holding the Normalized data and the Evaluation Subset lists of all 15 people; its SHA-256
    is recorded beside it on first success (``.sha256``) and must match afterwards. ``downloaded``: whether it is
    the pipeline's download rather than the user's copy (default: judged by its path), which decides the fix."""
    archive = Path(archive)
    downloaded = is_download(archive) if downloaded is None else downloaded
    recorded = checksum_path(archive)
    digest = sha256(archive)
    if recorded.exists():
        expected = recorded.read_text().split()[0]
        if digest != expected:
            raise _refused(archive, f"does not match the SHA-256 recorded in {recorded} when it was first verified: "
                           "it changed or is damaged", downloaded, "Delete both and download again", recorded)
        return
    try:
        with tarfile.open(archive) as tar:
            names = set(tar.getnames())
    except (tarfile.TarError, OSError, EOFError) as err:
        raise _refused(archive, f"is not a readable tar archive ({err})", downloaded) from None
    missing = [f"{EVAL_LISTS}/{p}.txt" for p in PEOPLE if f"{EVAL_LISTS}/{p}.txt" not in names]
    missing += [f"{NORMALIZED}/{p}" for p in PEOPLE if not any(n.startswith(f"{NORMALIZED}/{p}/") for n in names)]
    if missing:
        raise _refused(archive, f"lacks {len(missing)} expected members (e.g. {missing[:3]}): it is not the MPIIGaze "
                       "archive or it is incomplete", downloaded)
    with atomic_path(recorded) as tmp:
        tmp.write_text(f"{digest}  {archive.name}\n")


def extract(archive, root) -> Path:
    """Extract the Normalized data and Evaluation Subset into ``root`` (the raw-data folder, never modified
    afterwards); returns the ``MPIIGaze`` folder."""
    root = Path(root)
    tmp = root.with_name(root.name + ".extracting")
    shutil.rmtree(tmp, ignore_errors=True)
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if m.name.startswith((NORMALIZED + "/", EVAL_LISTS + "/"))]
        tar.extractall(tmp, members=members, filter="data")  # "data": no absolute paths, links or devices
    if root.exists():
        shutil.rmtree(root)
    tmp.replace(root)
    return root / "MPIIGaze"


# ------------------------------------------------------------------------------------------- preparation


def _as_list(x) -> list:
    """scipy squeezes a one-element cell array / struct field to a scalar: undo that."""
    return list(np.atleast_1d(x))


def load_day(path) -> dict:
    """One ``dayYY.mat``: per eye (``left``/``right``) images ``(N, 36, 60)`` uint8, gaze ``(N, 3)``, pose
    ``(N, 3)``, and the file names ``(N,)``; single-sample days are reshaped back to N = 1."""
    from scipy.io import loadmat
    try:
        mat = loadmat(path, struct_as_record=False, squeeze_me=True)
    except Exception as err:  # scipy raises several types for a damaged file
        raise ValueError(f"{path} is not a readable .mat file ({err}); re-extract the archive") from None
    names = [str(n) for n in _as_list(mat["filenames"])]
    out = {"filenames": names}
    for side in ("left", "right"):
        eye = getattr(mat["data"], side)
        images = np.asarray(eye.image, dtype=np.uint8)
        out[side] = {"image": images.reshape(len(names), *images.shape[-2:]),
                     "gaze": np.asarray(eye.gaze, dtype=np.float64).reshape(len(names), 3),
                     "pose": np.asarray(eye.pose, dtype=np.float64).reshape(len(names), 3)}
    return out


def read_eval_list(path) -> list[tuple[str, str, str]]:
    """``pXX.txt`` → ``[(day, file, side), ...]`` from lines ``dayYY/NNNN.jpg left``."""
    entries = []
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rel, side = line.split()
            day, name = rel.split("/")
        except ValueError:
            raise ValueError(f"{path}:{n}: expected 'dayYY/NNNN.jpg left|right', got {line!r}") from None
        if side not in ("left", "right"):
            raise ValueError(f"{path}:{n}: eye must be left or right, got {side!r}")
        entries.append((day, name, side))
    return entries


def prepare(mpiigaze_dir, out, people=PEOPLE, per_person: int = SAMPLES_PER_PERSON) -> dict:
    """Read the Evaluation Subset of ``people`` from an extracted ``MPIIGaze`` folder and write ``out``:
    ``images`` (N, 36, 60) uint8, ``gaze`` and ``pose`` (N, 2) float32 (pitch, yaw), ``person`` (N,) int8."""
    base = Path(mpiigaze_dir)
    images, gazes, poses, persons = [], [], [], []
    for pid, person in enumerate(people):
        lst = base / "Evaluation Subset" / "sample list for eye image" / f"{person}.txt"
        if not lst.exists():
            raise FileNotFoundError(f"{lst} is missing: {base} is not a complete MPIIGaze folder")
        entries = read_eval_list(lst)
        if len(entries) != per_person:
            raise ValueError(f"{lst} lists {len(entries)} samples, expected {per_person}")
        days: dict[str, dict] = {}
        for day, name, side in entries:
            if day not in days:
                mat = base / "Data" / "Normalized" / person / f"{day}.mat"
                if not mat.exists():
                    raise FileNotFoundError(f"{mat} is missing (listed in {lst.name}); re-extract the archive")
                d = load_day(mat)
                d["index"] = {Path(f).name: i for i, f in enumerate(d["filenames"])}
                days[day] = d
            d = days[day]
            if name not in d["index"]:
                raise ValueError(f"{person}/{day}.mat has no sample {name} (listed in {lst.name})")
            i = d["index"][name]
            eye = d[side]
            img = eye["image"][i:i + 1]
            gaze, pose = gaze_to_pitchyaw(eye["gaze"][i]), pose_to_pitchyaw(eye["pose"][i])
            if side == "right":
                img, gaze, pose = flip_right_eye(img, gaze, pose)
            images.append(img)
            gazes.append(gaze)
            poses.append(pose)
            persons.append(pid)
    arrays = {"images": np.ascontiguousarray(np.concatenate(images)), "gaze": np.concatenate(gazes).astype(np.float32),
              "pose": np.concatenate(poses).astype(np.float32), "person": np.asarray(persons, dtype=np.int8),
              "people": np.asarray(list(people))}
    save_npz(out, checksum=True, **arrays)
    return arrays


def fold_dataset(prepared, test_person: str, val_fraction: float = 0.1, seed: int = 0):
    """Leave-one-person-out fold: ``test_person`` is the clean test set, the other people are the development
    samples with ``val_fraction`` of them as the validation split. Inputs: eye images (uint8) plus head pose as
    the extra input joined before the last layer; labels: gaze (pitch, yaw) in radians."""
    from kdreg.data import Dataset, validation_mask
    from kdreg.io import load_npz
    a = load_npz(prepared, ("images", "gaze", "pose", "person", "people"))
    people = [str(p) for p in a["people"]]
    if test_person not in people:
        raise ValueError(f"fold {test_person!r} is not among the prepared people {people}")
    test = a["person"] == people.index(test_person)
    dev = ~test
    return Dataset(x_dev=a["images"][dev], y_dev=a["gaze"][dev], val=validation_mask(int(dev.sum()), val_fraction, seed),
                   x_test=a["images"][test], y_test=a["gaze"][test], name=f"mpiigaze.{test_person}", task="gaze",
                   e_dev=a["pose"][dev], e_test=a["pose"][test])


def source_problems(name: str, cfg: dict) -> list[str]:
    """What stops the pipeline from using MPIIGaze as configured, checked before any job: the user's copy named
    but absent, a download URL of the wrong shape (a URL only ever reaches the downloader, quoted), or people and
    folds that no fold job could use (:func:`fold_dataset` holds out one prepared person, trains on the others)."""
    import re
    problems = _people_problems(name, cfg)
    url = cfg.get("url") or URL
    if not re.match(r"^(https?|file)://[^\s'\"`<>\\^{}|]+$", url):
        problems.append(f"datasets.{name}.url: {url!r} is not an http(s):// or file:// URL without spaces or "
                        f"quotes; fix it, or set datasets.{name}.archive to a downloaded copy")
    for key in ("archive", "root"):
        if cfg.get(key) and not Path(cfg[key]).exists():
            problems.append(f"datasets.{name}.{key}: {cfg[key]} does not exist; fix the path or set it to null to "
                            "download the archive")
    return problems


def _people_problems(name: str, cfg: dict) -> list[str]:
    people, folds = list(cfg.get("people") or []), list(cfg.get("folds") or [])
    unknown = {key: [p for p in cfg.get(key) or [] if p not in PEOPLE] for key in ("people", "folds")}
    problems = [f"datasets.{name}.{key}: {bad} are not people of MPIIGaze, whose people are p00 .. p14; fix the names"
                for key, bad in unknown.items() if bad]
    if problems:
        return problems
    if len(people) == 1:
        return [f"datasets.{name}.people: {people} is one person, and a fold trains on the other prepared people; "
                f"list at least two, or [] for all 15"]
    if people and not folds:
        return [f"datasets.{name}.folds: [] holds out all 15 people, but datasets.{name}.people prepares only "
                f"{people}; list the folds to evaluate (e.g. folds: {people}), or set people: []"]
    outside = [p for p in folds if people and p not in people]
    if outside:
        return [f"datasets.{name}.folds: {outside} are not among datasets.{name}.people {people}, and a fold holds "
                f"out a prepared person; list folds from people, or add {outside} to people"]
    return []


def source_report(cfg: dict, root: Path) -> tuple[list[str], int]:
    """``kdreg check``'s lines on the MPIIGaze source (the user's folder, or the archive, fully verified) and the
    number of problems."""
    lines = ["MPIIGaze is CC BY-NC-SA 4.0 (non-commercial)"]
    if cfg.get("root"):
        ok = (Path(cfg["root"]) / "Data" / "Normalized").is_dir()
        lines.append(f"root {cfg['root']}: {'ok' if ok else 'MISSING Data/Normalized'}")
        return lines, 0 if ok else 1
    archive = Path(cfg.get("archive") or root / DOWNLOADED)
    if not archive.exists():
        return lines + [f"archive {archive}: missing (the pipeline downloads {cfg.get('url') or URL}, about "
                        "2.1 GB)"], 0
    try:
        verify_archive(archive, downloaded=not cfg.get("archive"))
    except ValueError as err:
        return lines + [f"archive {archive}: CORRUPT", f"  {err}"], 1
    return lines + [f"archive {archive}: ok"], 0
