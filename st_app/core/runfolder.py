"""Run folders as transactions: an epoch's files appear together or not at all; one writer.

A run folder keeps its files at the top level, as it always did (``model.safetensors``,
``optimizer.safetensors``, ``method.safetensors``, ``meta.json``, ``metrics.jsonl``,
``command.txt``...), plus:

- ``manifest.json``: the committed epoch, with the sha256 and size of each of its files;
- ``.lock``: the writer's OS advisory lock (``fcntl.flock`` / ``msvcrt.locking``), which holds
  the writer's pid; the OS drops it when the process dies, so a killed run never stays locked;
- ``.txn/``: an epoch being written.

One commit: (1) stage every file in ``.txn/`` (fsync each); (2) the commit point: write
``.txn/manifest.json`` (temp + fsync + rename); (3) move each file to the top level, then the
manifest, then remove ``.txn``. A kill before (2) leaves the previous epoch untouched and the
next writer deletes ``.txn``; a kill after (2) is rolled forward by the next writer. Readers
never lock and never write: they take the committed manifest (``.txn``'s if present, else the
top one), read each file from ``.txn/`` or the top level, and check every sha256, retrying
when a writer moved on underneath them; a mismatch that is not a concurrent commit is damage
and is reported, never loaded. Folders written before manifests existed load as they are.

``ST_APP_FAULT=<action>:<boundary>[@<epoch>]`` is a test hook (actions ``kill``, ``stop``,
``torn``, ``enospc``; boundaries from :func:`fault_points`) for the fault-injection tests.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

__all__ = [
    "LOCK_FILE",
    "MANIFEST_FILE",
    "RUN_FILES",
    "TXN_DIR",
    "RunFolder",
    "RunFolderError",
    "RunLockedError",
    "RunView",
    "describe_os_error",
    "fault_points",
    "has_run",
    "is_run_file",
    "read_run",
]

MANIFEST_FILE = "manifest.json"
LOCK_FILE = ".lock"
TXN_DIR = ".txn"
RUN_FORMAT = "st_app.run/1"
# Files a run folder may hold; no output other than the run's own writer may replace them.
RUN_FILES = frozenset({"model.safetensors", "optimizer.safetensors", "method.safetensors", "meta.json",
                       "metrics.jsonl", "command.txt", MANIFEST_FILE, LOCK_FILE})
FAULT_ENV = "ST_APP_FAULT"
_LOCK_OFFSET = 1 << 20  # Windows locks bytes; lock one far from the pid so readers can read it


class RunFolderError(ValueError):
    """A run folder cannot be read or written; one line naming the path and the cause."""


class RunLockedError(RunFolderError):
    """Another process (or another trainer in this one) is writing the run folder."""


def describe_os_error(exc: OSError, path: str | Path | None = None) -> str:
    """``path: cause`` in one line (``No space left on device``, ``Read-only file system``...)."""
    cause = exc.strerror or type(exc).__name__
    where = path if path is not None else (exc.filename or "")
    return f"{where}: {cause}" if where else cause


# ---------------------------------------------------------------------------- fault hook
def fault_points(names: Iterable[str]) -> list[str]:
    """Every boundary of one commit writing ``names``, in the order they are passed."""
    names = list(names)
    points = [p for n in names for p in (f"stage:{n}", f"staged:{n}")]
    points += ["commit", "committed"]
    points += [p for n in names for p in (f"apply:{n}", f"applied:{n}")]
    points += [f"apply:{MANIFEST_FILE}", f"applied:{MANIFEST_FILE}"]
    return points


def _fault(point: str, epoch: int | None, path: Path | None = None) -> str | None:
    """Act on ``ST_APP_FAULT`` at ``point``; returns ``torn`` for the writer to tear the file."""
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return None
    action, _, where = spec.partition(":")
    at = None
    if "@" in where:
        where, _, at = where.rpartition("@")
    if where != point or (at is not None and str(epoch) != at):
        return None
    if action == "kill":
        os.kill(os.getpid(), getattr(signal, "SIGKILL", signal.SIGTERM))
        time.sleep(10)  # pragma: no cover - the signal arrives first
    if action == "stop" and hasattr(signal, "SIGSTOP"):
        os.kill(os.getpid(), signal.SIGSTOP)
    if action == "enospc":
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path or point))
    return action if action == "torn" else None


# ----------------------------------------------------------------------------- low level
def _fsync_dir(path: Path) -> None:
    if sys.platform == "win32":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_new(path: Path, data: bytes, torn: bool = False) -> None:
    with open(path, "xb") as fh:
        if torn:
            fh.write(data[: len(data) // 2])
            fh.flush()
            os.kill(os.getpid(), getattr(signal, "SIGKILL", signal.SIGTERM))
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _replace(src: Path, dst: Path) -> None:
    """``os.replace``; on Windows a reader holding ``dst`` open for a moment makes it fail, so retry."""
    for attempt in range(50):
        try:
            os.replace(src, dst)
            return
        except PermissionError:
            if sys.platform != "win32" or attempt == 49:
                raise
            time.sleep(0.02)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read_json(path: Path) -> dict[str, Any] | None:
    """A manifest, or None when absent; a manifest that is not JSON is damage."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        obj = json.loads(raw)
    except ValueError:
        raise RunFolderError(f"{path} is damaged (not valid JSON)") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("files"), dict):
        raise RunFolderError(f"{path} is damaged (no file list)")
    return obj


def has_run(path: str | Path) -> bool:
    """True when the folder holds a committed epoch (or a run written before manifests)."""
    p = Path(path)
    return any((p / n).is_file() for n in (MANIFEST_FILE, "model.safetensors")) or (p / TXN_DIR / MANIFEST_FILE).is_file()


def is_run_file(path: str | Path) -> bool:
    """Whether writing ``path`` would replace a file of a run folder (or its transaction)."""
    p = Path(os.path.abspath(path))
    for i, part in enumerate(p.parts[:-1]):
        if part == TXN_DIR and has_run(Path(*p.parts[:i])):
            return True
    return p.name in RUN_FILES and has_run(p.parent)


# ------------------------------------------------------------------------------ the lock
class _Lock:
    """An exclusive, non-blocking OS lock on ``<folder>/.lock`` holding the owner's pid."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / LOCK_FILE
        self._fh: IO[bytes] | None = None

    @property
    def held(self) -> bool:
        return self._fh is not None

    def acquire(self) -> None:
        if self._fh is not None:
            return
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            fh = os.fdopen(fd, "r+b")  # kept open while the lock is held
        except OSError as exc:
            raise RunFolderError(f"cannot lock run folder {describe_os_error(exc, self.path.parent)}") from None
        try:
            if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
                import msvcrt

                fh.seek(_LOCK_OFFSET)
                msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
            else:
                import fcntl

                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = self.holder()
            fh.close()
            who = f"process {holder}" if holder else "another process"
            if holder == os.getpid():
                who = "another trainer in this process"
            raise RunLockedError(
                f"run folder {self.path.parent} is being written by {who} (lock {self.path}); "
                "wait for it to finish or choose another folder"
            ) from None
        try:
            fh.seek(0)
            fh.write(f"{os.getpid():<20}\n".encode())
            fh.flush()
        except OSError:
            pass  # the lock holds even if the pid note cannot be written (a full disk)
        self._fh = fh

    def holder(self) -> int | None:
        with contextlib.suppress(OSError, ValueError):
            return int(self.path.read_bytes()[:21].split()[0])
        return None

    def release(self) -> None:
        fh, self._fh = self._fh, None
        if fh is None:
            return
        with contextlib.suppress(OSError):
            if sys.platform == "win32":  # pragma: no cover
                import msvcrt

                fh.seek(_LOCK_OFFSET)
                msvcrt.locking(fh.fileno(), msvcrt.LK_UNLCK, 1)  # type: ignore[attr-defined]
            else:
                import fcntl

                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        fh.close()


# --------------------------------------------------------------------------------- reads
@dataclass
class RunView:
    """One consistent epoch of a run folder: the bytes of the files asked for that it has."""

    path: Path
    epoch: int | None
    files: dict[str, bytes] = field(default_factory=dict)
    checked: bool = True  # False for folders written before manifests (nothing to check against)
    listed: tuple[str, ...] = ()

    def get(self, name: str) -> bytes | None:
        return self.files.get(name)


def _committed(path: Path) -> tuple[dict[str, Any] | None, bool]:
    """The committed manifest and whether it is the one waiting in ``.txn`` (rolled forward)."""
    txn = _read_json(path / TXN_DIR / MANIFEST_FILE)
    if txn is not None:
        return txn, True
    return _read_json(path / MANIFEST_FILE), False


def _read_member(path: Path, name: str, in_txn: bool) -> bytes | None:
    candidates = [path / TXN_DIR / name, path / name] if in_txn else [path / name]
    for c in candidates:
        try:
            return c.read_bytes()
        except FileNotFoundError:
            continue
        except IsADirectoryError:
            raise RunFolderError(f"{c} is a folder, not a run file") from None
    return None


def read_run(path: str | Path, names: Iterable[str], *, attempts: int = 50) -> RunView:
    """The files ``names`` of the committed epoch, each checked against the manifest.

    Never blocks and never writes. A file that changes while it is read (a writer committing
    the next epoch) is read again; one that differs from an unchanged manifest is damage.
    """
    path = Path(path)
    wanted = list(names)
    for attempt in range(attempts):
        manifest, in_txn = _committed(path)
        if manifest is None:
            files = {}
            for n in wanted:
                try:
                    files[n] = (path / n).read_bytes()
                except FileNotFoundError:
                    continue
                except OSError as exc:
                    raise RunFolderError(f"cannot read {describe_os_error(exc, path / n)}") from None
            return RunView(path, None, files, checked=False)
        entries = manifest["files"]
        files, bad = {}, None
        for n in wanted:
            entry = entries.get(n)
            if entry is None:
                continue
            try:
                data = _read_member(path, n, in_txn)
            except OSError as exc:
                raise RunFolderError(f"cannot read {describe_os_error(exc, path / n)}") from None
            if data is None or len(data) != entry.get("size") or _sha256(data) != entry.get("sha256"):
                bad = (n, data)
                break
            files[n] = data
        if bad is None:
            epoch = manifest.get("epoch")
            return RunView(path, epoch if isinstance(epoch, int) else None, files, True, tuple(entries))
        if _committed(path) == (manifest, in_txn):  # nothing moved on: the file itself is wrong
            name, data = bad
            what = "is missing" if data is None else "does not match its sha256 in manifest.json (damaged or edited)"
            raise RunFolderError(f"{path / name} {what}; the epoch cannot be loaded")
        time.sleep(0.005 * (attempt + 1))
    raise RunFolderError(f"{path} kept changing while it was read; try again when its writer is idle")


# -------------------------------------------------------------------------------- writes
class RunFolder:
    """A run folder opened for writing (``writer=True``: locked, recovered, cleaned) or not.

    The caller decides whether it is the writer (under DDP only rank 0 is); a non-writer
    instance can only read. ``commit`` takes every file of an epoch as one mapping, so a new
    per-epoch file is one more entry, not a new code path.
    """

    def __init__(self, path: str | Path, *, writer: bool = True) -> None:
        if not str(path).strip():
            raise RunFolderError("the run folder path is empty")
        self.path = Path(path)
        self.writer = writer
        self._lock = _Lock(self.path)
        if writer:
            self.acquire()

    @classmethod
    def open(cls, path: str | Path, *, writer: bool = True) -> RunFolder:
        return cls(path, writer=writer)

    # ------------------------------------------------------------------ lock and recovery
    @property
    def locked(self) -> bool:
        return self._lock.held

    def acquire(self) -> None:
        """Take the lock (creating the folder), then finish or undo an interrupted commit."""
        if self._lock.held:
            return
        if self.path.exists() and not self.path.is_dir():
            raise RunFolderError(f"{self.path} exists and is not a folder; choose another run folder")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RunFolderError(f"cannot create run folder {describe_os_error(exc, self.path)}") from None
        self._lock.acquire()
        try:
            self._recover()
        except BaseException:
            self._lock.release()
            raise

    def release(self) -> None:
        self._lock.release()

    close = release

    def __enter__(self) -> RunFolder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def _recover(self) -> None:
        txn = self.path / TXN_DIR
        try:
            if txn.is_dir():
                if (txn / MANIFEST_FILE).is_file():
                    self._apply(None)  # committed: roll forward
                else:
                    shutil.rmtree(txn)  # never committed: the previous epoch stands
            for p in self.path.iterdir():  # temp files of interrupted single-file writes
                if p.name.startswith(".") and p.name.endswith(".tmp") and p.is_file():
                    p.unlink()
        except OSError as exc:
            raise RunFolderError(f"cannot recover run folder {describe_os_error(exc)}") from None

    def _require_writer(self) -> None:
        if not self.writer:
            raise RunFolderError(f"{self.path} was opened read-only (this process is not the run's writer)")
        self.acquire()

    # ------------------------------------------------------------------------- queries
    def has_run(self) -> bool:
        return has_run(self.path)

    def manifest(self) -> dict[str, Any] | None:
        return _committed(self.path)[0]

    def read(self, names: Iterable[str]) -> RunView:
        return read_run(self.path, names)

    # -------------------------------------------------------------------------- commit
    def commit(self, files: Mapping[str, bytes], *, epoch: int | None = None, drop: Collection[str] = ()) -> None:
        """Make ``files`` (name -> bytes) the run's new committed state, all or nothing.

        Files of the previous state that are neither given nor in ``drop`` are carried over
        unchanged. Any OS error (a full disk...) raises :class:`RunFolderError` naming the path
        and the cause, and the previous state stays intact.
        """
        self._require_writer()
        self._recover()  # finish a commit of this process that failed after its commit point
        for name in files:
            if not name or "/" in name or "\\" in name or name.startswith(".") or name == MANIFEST_FILE:
                raise ValueError(f"{name!r} cannot be a run file name")
        previous = self._current_entries()
        entries = {n: e for n, e in previous.items() if n not in files and n not in drop}
        remove = sorted(n for n in previous if n not in files and n in drop)
        txn = self.path / TXN_DIR
        try:
            if txn.exists():
                shutil.rmtree(txn)
            txn.mkdir()
            for name, data in files.items():
                torn = _fault(f"stage:{name}", epoch, txn / name) == "torn"
                _write_new(txn / name, data, torn)
                _fault(f"staged:{name}", epoch, txn / name)
                entries[name] = {"sha256": _sha256(data), "size": len(data)}
            manifest = {"format": RUN_FORMAT, "epoch": epoch, "files": entries, "remove": remove}
            _fsync_dir(txn)
            _fault("commit", epoch, txn / MANIFEST_FILE)
            tmp = txn / f".{MANIFEST_FILE}.tmp"
            _write_new(tmp, (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode())
            os.replace(tmp, txn / MANIFEST_FILE)
            _fsync_dir(txn)
        except OSError as exc:
            with contextlib.suppress(OSError):
                shutil.rmtree(txn)
            what = f"epoch {epoch}" if epoch is not None else "the checkpoint"
            raise RunFolderError(f"cannot save {what}: {describe_os_error(exc)}; "
                                 "the previous state of the run folder is kept") from None
        _fault("committed", epoch, txn)
        try:
            self._apply(epoch)
        except OSError as exc:
            raise RunFolderError(f"epoch saved but not yet in place ({describe_os_error(exc)}); "
                                 "it is completed the next time the run folder is opened") from None

    def _current_entries(self) -> dict[str, dict[str, Any]]:
        manifest = _read_json(self.path / MANIFEST_FILE)
        if manifest is not None:
            return dict(manifest["files"])
        entries = {}  # a folder from before manifests: adopt its run files as they are
        for name in sorted(RUN_FILES - {MANIFEST_FILE, LOCK_FILE}):
            p = self.path / name
            if p.is_file():
                data = p.read_bytes()
                entries[name] = {"sha256": _sha256(data), "size": len(data)}
        return entries

    def _apply(self, epoch: int | None) -> None:
        """Move a committed ``.txn`` into place; safe to repeat after a kill at any point."""
        txn = self.path / TXN_DIR
        manifest = _read_json(txn / MANIFEST_FILE)
        assert manifest is not None
        for name in manifest["files"]:
            src = txn / name
            if src.exists():
                _fault(f"apply:{name}", epoch, self.path / name)
                _replace(src, self.path / name)
                _fault(f"applied:{name}", epoch, self.path / name)
        for name in manifest.get("remove", []):
            if name not in manifest["files"] and name in RUN_FILES:
                with contextlib.suppress(FileNotFoundError):
                    (self.path / name).unlink()
        _fsync_dir(self.path)
        _fault(f"apply:{MANIFEST_FILE}", epoch, self.path / MANIFEST_FILE)
        _replace(txn / MANIFEST_FILE, self.path / MANIFEST_FILE)
        _fsync_dir(self.path)
        _fault(f"applied:{MANIFEST_FILE}", epoch, self.path / MANIFEST_FILE)
        shutil.rmtree(txn)
