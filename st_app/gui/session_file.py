"""Session files (``.stlab``): versioned JSON, safe to open when a stranger sent it.

A session file holds references to the checkpoints (path + sha256 of the weights), the plan
and its undo history, the BN and colour modes, the analyses' reports, the training curves
and the presentation flag. It never holds code or pickles, and opening one runs nothing:

- files over :data:`MAX_BYTES` are refused before they are read, any text over
  :data:`MAX_TEXT` characters and anything of the wrong type are refused with one message;
- a newer format version is refused with a message saying so;
- a checkpoint path is resolved against the session's folder; a relative path that climbs out
  of it (``..``) is never followed, and a checkpoint whose sha256 differs from the one saved
  is not loaded: both are reported as problems the app offers to locate;
- a *bundle* (``.zip``) carries the checkpoints beside the session; only the expected member
  names are extracted (no path leaves the extraction folder), within a size budget.

Plain Python (no Qt): :class:`SessionData` is what the app's :class:`~st_app.gui.session.Session`
writes and reads.
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

__all__ = [
    "FORMAT", "VERSION", "CheckpointRef", "SessionData", "SessionFileError", "file_sha256", "read_session",
    "weights_file", "write_bundle", "write_session",
]

FORMAT = "st-lab-session"
VERSION = 1
SUFFIX = ".stlab"
MAX_BYTES = 16 * 2**20  # a session with every report and a long training stays far below this
MAX_TEXT = 4096  # any single piece of text: paths, plans, edit descriptions
MAX_EDITS = 10_000
MAX_BUNDLE_BYTES = 2 * 2**30
SLOTS = ("ct", "st")
BN_MODES = ("main", "recalibrate")
COLOUR_MODES = ("stage", "ct", "st")
ANALYSES = ("loafing", "subnets", "robustness", "importance", "compare", "depth")
RESOURCE_PREFIX = "resource:"
_SHA = re.compile(r"^[0-9a-f]{64}$")
_BUNDLE_MEMBER = re.compile(r"^checkpoints/(ct|st)/(model\.safetensors|meta\.json)$")


class SessionFileError(ValueError):
    """A session file that cannot be opened; the message is one sentence for the user."""


def weights_file(path: str | Path) -> Path:
    """The file whose bytes identify a checkpoint: a run folder's ``model.safetensors``, or the file."""
    p = Path(path)
    return p / "model.safetensors" if p.is_dir() else p


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class CheckpointRef:
    """A checkpoint a session refers to: the text saved, where it resolves, its sha256."""

    slot: str
    saved: str
    sha256: str
    path: Path | None  # None: refused (the path climbs out of the session's folder)
    problem: str | None = None  # set by :meth:`verify`

    def verify(self) -> bool:
        """Check the file is there and unchanged; ``problem`` says what is wrong otherwise."""
        if self.path is None:
            self.problem = f"its path {self.saved!r} leaves the session's folder, so it was not followed"
            return False
        target = weights_file(self.path)
        if not target.is_file():
            self.problem = f"{self.path} is missing"
            return False
        try:
            digest = file_sha256(target)
        except OSError as exc:
            self.problem = f"{target} cannot be read ({exc})"
            return False
        if digest != self.sha256:
            self.problem = f"{target} has changed since the session was saved (sha256 differs)"
            return False
        self.problem = None
        return True


@dataclass
class SessionData:
    """Everything a session file holds, validated."""

    checkpoints: dict[str, CheckpointRef] = field(default_factory=dict)
    plan: str | None = None
    edits: list[tuple[str, str, str]] = field(default_factory=list)  # (description, before, after)
    history_index: int = 0
    bn: str = "main"
    colour: str = "stage"
    presentation: bool = False
    reports: dict[str, dict[str, Any]] = field(default_factory=dict)
    curves: dict[str, Any] | None = None
    app_version: str = ""
    source: Path | None = None  # the file it was read from


# ------------------------------------------------------------------------------ writing
def write_session(path: str | Path, data: SessionData, *, relative_to: Path | None = None,
                  overwrite: bool = True) -> Path:
    """Write ``data`` as JSON (atomically); checkpoint paths inside ``path``'s folder are relative.

    A safe output (:mod:`st_app.core.safeio`): never onto a run's own files or a non-regular
    file, an existing file only with ``overwrite`` (the app asks first); OS errors are one line.
    """
    from st_app import __version__
    from st_app.core.safeio import write_text

    path = Path(path)
    base = (relative_to or path.parent).resolve()
    checkpoints = {}
    for slot, ref in data.checkpoints.items():
        if ref.path is None:
            continue
        p = ref.path.resolve()
        bundled = _resources_root()
        if p.is_relative_to(base):
            text = p.relative_to(base).as_posix()
        elif p.is_relative_to(bundled):
            text = RESOURCE_PREFIX + p.relative_to(bundled).as_posix()
        else:
            text = str(p)
        checkpoints[slot] = {"path": text, "sha256": ref.sha256}
    doc = {
        "format": FORMAT, "version": VERSION, "app_version": __version__,
        "checkpoints": checkpoints, "plan": data.plan,
        "history": {"index": data.history_index,
                    "edits": [{"text": t, "before": b, "after": a} for t, b, a in data.edits]},
        "bn": data.bn, "colour": data.colour, "presentation": data.presentation,
        "reports": data.reports, "curves": data.curves,
    }
    text = json.dumps(doc, indent=1, allow_nan=False)
    if len(text.encode("utf-8")) > MAX_BYTES:
        raise SessionFileError(f"the session would be larger than {MAX_BYTES // 2**20} MiB; clear the training "
                               "curves or reports and save again")
    write_text(path, text + "\n", force=overwrite, what="session")
    return path


def write_bundle(path: str | Path, data: SessionData, *, overwrite: bool = True) -> Path:
    """One zip holding the session and the checkpoints it refers to (for handing a lesson to a class);
    a safe output like :func:`write_session`."""
    from st_app.core.safeio import atomic_output

    path = Path(path)
    inner = SessionData(**{**data.__dict__, "checkpoints": {}})
    members: list[tuple[Path, str]] = []
    for slot, ref in data.checkpoints.items():
        if ref.path is None:
            continue
        weights = weights_file(ref.path)
        meta = weights.with_name("meta.json") if ref.path.is_dir() else weights.with_suffix(".json")
        members.append((weights, f"checkpoints/{slot}/model.safetensors"))
        if meta.is_file():
            members.append((meta, f"checkpoints/{slot}/meta.json"))
        inner.checkpoints[slot] = CheckpointRef(slot, f"checkpoints/{slot}", ref.sha256, None)
    with tempfile.TemporaryDirectory() as tmp:
        session = Path(tmp) / "session.stlab"
        for slot, ref in inner.checkpoints.items():  # relative to the bundle's root
            ref.path = Path(tmp) / "checkpoints" / slot
        write_session(session, inner, relative_to=Path(tmp))
        with atomic_output(path, force=overwrite, what="session bundle", suffix=".zip") as part:
            with zipfile.ZipFile(part, "w", compression=zipfile.ZIP_DEFLATED) as zf:
                zf.write(session, "session.stlab")
                for src, name in members:
                    zf.write(src, name)
    return path


# ------------------------------------------------------------------------------ reading
def read_session(path: str | Path, extract_root: Path | None = None) -> SessionData:
    """Read and validate a session file or bundle; :class:`SessionFileError` with one clear message."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise SessionFileError(f"{path} cannot be read ({exc.strerror or exc})") from None
    if zipfile.is_zipfile(path):
        return _read_bundle(path, extract_root)
    if size > MAX_BYTES:
        raise SessionFileError(f"{path.name} is {size / 2**20:.0f} MiB; a session file is at most "
                               f"{MAX_BYTES // 2**20} MiB, so this is not one (nothing was opened)")
    try:
        raw = path.read_bytes()
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SessionFileError(f"{path.name} is not a session file (not valid JSON: {exc})") from None
    except RecursionError:
        raise SessionFileError(f"{path.name} is not a session file (nested too deeply)") from None
    except OSError as exc:
        raise SessionFileError(f"{path} cannot be read ({exc.strerror or exc})") from None
    try:
        data = _parse(doc, path.parent)
    except SessionFileError as exc:
        raise SessionFileError(f"{path.name}: {exc}") from None
    data.source = path
    return data


def _parse(doc: Any, base: Path) -> SessionData:
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise SessionFileError("not an ST Lab session (no 'format': 'st-lab-session')")
    version = doc.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise SessionFileError("the format version is missing or not a whole number")
    if version > VERSION:
        raise SessionFileError(f"written by a newer ST Lab (session format {version}); this version reads format "
                               f"{VERSION} and older: update ST Lab to open it")
    data = SessionData(app_version=_text(doc.get("app_version", ""), "app_version", 64))
    cks = _obj(doc.get("checkpoints", {}), "checkpoints")
    for slot, ref in cks.items():
        if slot not in SLOTS:
            raise SessionFileError(f"unknown checkpoint slot {_short(slot)!r}")
        ref = _obj(ref, f"checkpoint {slot}")
        saved = _text(ref.get("path"), f"{slot} checkpoint path")
        sha = _text(ref.get("sha256"), f"{slot} checkpoint sha256", 64)
        if not _SHA.match(sha):
            raise SessionFileError(f"the {slot.upper()} checkpoint's sha256 is not 64 hexadecimal digits")
        data.checkpoints[slot] = CheckpointRef(slot, saved, sha, _resolve(saved, base))
    plan = doc.get("plan")
    data.plan = None if plan is None else _text(plan, "plan")
    history = _obj(doc.get("history", {}), "history")
    edits = history.get("edits", [])
    if not isinstance(edits, list) or len(edits) > MAX_EDITS:
        raise SessionFileError(f"history.edits must be a list of at most {MAX_EDITS} edits")
    for e in edits:
        e = _obj(e, "an edit")
        data.edits.append((_text(e.get("text"), "edit description", 300), _text(e.get("before"), "plan"),
                           _text(e.get("after"), "plan")))
    index = history.get("index", len(data.edits))
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index <= len(data.edits):
        raise SessionFileError("history.index is not a position in the history")
    data.history_index = index
    data.bn = _choice(doc.get("bn", "main"), BN_MODES, "bn")
    data.colour = _choice(doc.get("colour", "stage"), COLOUR_MODES, "colour")
    presentation = doc.get("presentation", False)
    if not isinstance(presentation, bool):
        raise SessionFileError("presentation must be true or false")
    data.presentation = presentation
    for name, report in _obj(doc.get("reports", {}), "reports").items():
        if name not in ANALYSES or not isinstance(report, dict) or report.get("analysis") != name:
            raise SessionFileError(f"reports: {_short(name)!r} is not an analysis report")
        data.reports[name] = report
    curves = doc.get("curves")
    if curves is not None and not isinstance(curves, dict):
        raise SessionFileError("curves must be an object")
    data.curves = curves
    return data


def _resources_root() -> Path:
    from st_app.core.resources import resource_path

    return resource_path().resolve()


def _resolve(saved: str, base: Path) -> Path | None:
    """Where a saved checkpoint path points; None for a relative path that climbs out of ``base``.

    ``resource:checkpoints/...`` names a file bundled with ST Lab (the example sessions use it).
    """
    if saved.startswith(RESOURCE_PREFIX):
        rest = saved[len(RESOURCE_PREFIX):]
        if ".." in PurePosixPath(rest).parts or PurePosixPath(rest).is_absolute():
            return None
        return _resources_root() / rest
    p = Path(saved).expanduser()
    if p.is_absolute():
        return p
    if ".." in PurePosixPath(saved.replace("\\", "/")).parts:
        return None
    return (base / p).resolve()


def _read_bundle(path: Path, extract_root: Path | None) -> SessionData:
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            names = [i.filename for i in infos]
            if "session.stlab" not in names:
                raise SessionFileError(f"{path.name} is a zip without session.stlab, so not a session bundle")
            bad = [n for n in names if n != "session.stlab" and not _BUNDLE_MEMBER.match(n)]
            if bad:
                raise SessionFileError(f"{path.name} holds unexpected files ({_short(bad[0])}); nothing was extracted")
            if sum(i.file_size for i in infos) > MAX_BUNDLE_BYTES:
                raise SessionFileError(f"{path.name} would unpack to more than {MAX_BUNDLE_BYTES // 2**30} GiB")
            digest = file_sha256(path)[:16]
            root = (extract_root or Path(tempfile.gettempdir()) / "st-lab-bundles") / digest
            for info in infos:  # names are checked above: each lands inside root
                target = root / info.filename
                if not target.exists() or target.stat().st_size != info.file_size:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with zf.open(info) as src, open(target, "wb") as dst:
                        while chunk := src.read(1 << 20):
                            dst.write(chunk)
    except zipfile.BadZipFile as exc:
        raise SessionFileError(f"{path.name} is a damaged zip ({exc})") from None
    data = read_session(root / "session.stlab")
    data.source = path
    return data


# ------------------------------------------------------------------------------ checks
def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _obj(value: Any, what: str) -> dict:
    if not isinstance(value, dict):
        raise SessionFileError(f"{what} must be an object")
    return value


def _text(value: Any, what: str, limit: int = MAX_TEXT) -> str:
    if not isinstance(value, str):
        raise SessionFileError(f"{what} must be text")
    if len(value) > limit:
        raise SessionFileError(f"{what} is {len(value):,} characters long (at most {limit:,})")
    return value


def _choice(value: Any, choices: tuple[str, ...], what: str) -> str:
    if value not in choices:
        raise SessionFileError(f"{what} must be one of {', '.join(choices)}, not {_short(value)!r}")
    return str(value)
