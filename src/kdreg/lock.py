"""One writer per trained group: a training job holds ``{group dir}.lock`` while it writes the group.

Snakemake's own lock keeps a second Snakemake out of a working directory, but the documented recovery after
``kill -9`` of Snakemake lifts it (``--unlock``, then ``--rerun-incomplete``) while the orphaned jobs may still be
training; without a lock of its own a group would get a second writer, and runs, resume states and a manifest
from two processes. The lock lies beside the group's folder, not in it: Snakemake clears a directory output
before its job runs, and the manifest lists what is inside.
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from pathlib import Path

TRIES = 50  # an unreadable lock is retried (its writer may be between creating and filling it) for ~TRIES * PAUSE s
PAUSE = 0.1


class Locked(FileExistsError):
    """Another process writes the group. An OSError, so the CLI reports it as a user error: its message says
    what to do."""


def lock_path(out_dir) -> Path:
    out = Path(out_dir)
    return out.parent / f"{out.name}.lock"


@contextlib.contextmanager
def locked(*out_dirs, notice=None):
    """Hold the lock of every group folder in ``out_dirs`` while the block runs; each is released on leaving it,
    by an exception too. :class:`Locked` when another live process holds one; a stale lock (its process gone
    from this host) is taken over, saying so through ``notice`` (default: stderr, which is the job's log)."""
    notice = notice or (lambda line: print(line, file=sys.stderr, flush=True))
    with contextlib.ExitStack() as held:
        for out_dir in out_dirs:
            path, mine = _acquire(Path(out_dir), notice)
            held.callback(_release, path, mine)
        yield


def _me() -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S %z"),
            "identity": _identity(os.getpid())}


def _identity(pid: int) -> str | None:
    """The machine's boot and the process's start time (Linux; None elsewhere): a pid taken by another process
    since the holder died, as is usual after a restart, is then not mistaken for the holder."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return f"{boot}:{stat.rsplit(')', 1)[1].split()[19]}"  # field 22, starttime; the name in (...) may hold spaces


def _acquire(out_dir: Path, notice) -> tuple[Path, dict]:
    path, mine = lock_path(out_dir), _me()
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(TRIES):
        try:  # O_EXCL: of two processes creating the lock at once, exactly one succeeds
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            text = _read(path)
            holder = _parse(text)
            if holder is None:  # gone since, or its writer has not filled it yet
                time.sleep(PAUSE if text is not None else 0)
                continue
            _refuse_live(path, out_dir, holder)
            notice(f"kdreg: taking over {path}: its process {holder['pid']} (started {holder['started']}) no longer "
                   f"runs on this host (killed, or the machine restarted); this job now writes {out_dir}")
            _remove_if_unchanged(path, text)
            continue
        try:
            with os.fdopen(fd, "w") as f:
                f.write(json.dumps(mine))
                f.flush()
                os.fsync(f.fileno())
        except BaseException:  # e.g. a full disk: an empty lock left behind would refuse every later job
            path.unlink(missing_ok=True)
            raise
        return path, mine
    raise Locked(f"{path} does not hold a lock kdreg wrote (a pid, host and start time): if no job is writing "
                 f"{out_dir}, delete it (rm '{path}') and run again")


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None


def _parse(text: str | None) -> dict | None:
    try:
        holder = json.loads(text or "")
    except json.JSONDecodeError:
        return None
    ok = isinstance(holder, dict) and isinstance(holder.get("pid"), int) and holder["pid"] > 0 and "host" in holder
    return {"started": "at an unknown time", **holder} if ok else None


def _refuse_live(path: Path, out_dir: Path, holder: dict) -> None:
    """Raise :class:`Locked` unless the holder is a process of this host that no longer runs."""
    pid, host, started = holder["pid"], holder["host"], holder["started"]
    if host != socket.gethostname():
        raise Locked(f"{out_dir} is being written by process {pid} on host {host} (started {started}; its lock: "
                     f"{path}), and from {socket.gethostname()} kdreg cannot tell whether that process still runs. "
                     f"Wait for it to finish; if no job on {host} writes this group any more, delete the lock "
                     f"(rm '{path}') and run again")
    if _alive(pid, holder.get("identity")):
        raise Locked(f"{out_dir} is being written by process {pid} on this host (started {started}; its lock: "
                     f"{path}); a second writer would mix its files into the group, so this job stops. Wait for "
                     f"process {pid} to finish, or stop it (kill {pid}) and run again: the lock of a process that "
                     "no longer runs is taken over")


def _alive(pid: int, identity: str | None) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, as another user's process
        pass
    now = _identity(pid)
    return identity is None or now is None or now == identity


def _remove_if_unchanged(path: Path, text: str) -> None:
    """Remove the stale lock unless another process has taken it over since it was read. (Between this read and
    the unlink is a window of microseconds in which a second process taking over the same stale lock could
    lose its new lock: two jobs starting on one stale group at once, which Snakemake does not do.)"""
    if _read(path) == text:
        path.unlink(missing_ok=True)


def _release(path: Path, mine: dict) -> None:
    """Remove the lock if it is still this process's (it is another's only if taken over wrongly)."""
    if _parse(_read(path)) == mine:
        path.unlink(missing_ok=True)
