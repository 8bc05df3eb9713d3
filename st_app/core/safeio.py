"""Safe outputs: what every file the tool writes outside a run's own transaction goes through.

An output (an ONNX export, a lone ``.safetensors``, a report's CSV/JSON/figures) may not
replace a run folder's own files, nor anything that is not a regular file (``/dev/null``,
a folder, a pipe), nor an existing file unless the caller says so (``--force`` on the command
line, a confirmed question in the app). It is written to a temporary file in the same folder
and renamed into place, so a kill or a full disk never leaves half a file over a good one.
Every OS error becomes one :class:`OutputError` line naming the path and the cause.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .runfolder import describe_os_error, is_run_file

__all__ = ["OutputError", "atomic_output", "check_output_file", "check_output_folder", "write_bytes", "write_text"]


class OutputError(ValueError):
    """An output cannot (or may not) be written; one line naming the path and the cause."""


def check_output_file(path: str | Path, *, force: bool = False, what: str = "output") -> Path:
    """The destination as a Path, or :class:`OutputError` saying why it may not be written."""
    if not str(path).strip():
        raise OutputError(f"the {what} path is empty")
    dest = Path(path).expanduser()
    if is_run_file(dest):
        raise OutputError(f"refusing to write the {what} onto {dest}: it is a file of the run folder {dest.parent}")
    try:
        st = os.stat(dest)
    except FileNotFoundError:
        return dest
    except OSError as exc:
        raise OutputError(f"cannot write the {what} {describe_os_error(exc, dest)}") from None
    if not stat.S_ISREG(st.st_mode):
        kind = "a folder" if stat.S_ISDIR(st.st_mode) else "not a regular file (a device, pipe or socket)"
        raise OutputError(f"refusing to write the {what} onto {dest}: it is {kind}")
    if not force:
        raise OutputError(f"{dest} already exists; pass --force to overwrite it")
    return dest


def check_output_folder(path: str | Path, *, what: str = "output folder", create: bool = True) -> Path:
    """A folder to write into (created when missing), or one :class:`OutputError` line."""
    if not str(path).strip():
        raise OutputError(f"the {what} path is empty")
    folder = Path(path).expanduser()
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"the {what} {folder} exists and is not a folder")
    if create:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create the {what} {describe_os_error(exc, folder)}") from None
    return folder


@contextlib.contextmanager
def atomic_output(path: str | Path, *, force: bool = False, what: str = "output", suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path in the destination's folder; on success it replaces ``path``.

    ``suffix`` lets writers that pick a format from the file name (image exporters) see the
    right extension. The checks run before the work and again just before the rename.
    """
    dest = check_output_file(path, force=force, what=what)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=suffix, dir=dest.parent)
        os.close(fd)
    except OSError as exc:
        raise OutputError(f"cannot write the {what} {describe_os_error(exc, dest)}") from None
    tmp = Path(name)
    try:
        yield tmp
        check_output_file(dest, force=force, what=what)  # nothing appeared meanwhile
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
    except OSError as exc:
        raise OutputError(f"cannot write the {what} {describe_os_error(exc, dest)}") from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def write_bytes(path: str | Path, data: bytes, *, force: bool = False, what: str = "output") -> Path:
    """Write ``data`` to ``path`` atomically after :func:`check_output_file`."""
    with atomic_output(path, force=force, what=what) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
    return Path(path)


def write_text(path: str | Path, text: str, *, force: bool = False, what: str = "output") -> Path:
    return write_bytes(path, text.encode("utf-8"), force=force, what=what)
