"""Checkpoints: safetensors weights + JSON metadata, never pickles of our own.

A run folder holds ``model.safetensors`` (the metadata is also embedded in its header, so a
lone file is self-describing), ``meta.json``, ``optimizer.safetensors`` and ``metrics.jsonl``,
committed together per epoch and checked on load (:mod:`.runfolder`).
Foreign ``.pt``/``.pth`` state_dicts (e.g. torchvision weights a user already has) are read
with ``torch.load(weights_only=True)`` only, which refuses to run code from the file.
"""

from __future__ import annotations

import json
import os
import pickle
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from . import tensorfile
from .checkpoint_meta import RunInfo, run_info
from .meta_schema import MetaError, check_meta
from .models import ModelConfig, ResidualNet, model_from_config, recognise_state_dict
from .runfolder import RunFolder, RunFolderError, RunView, describe_os_error, has_run, read_run
from .safeio import write_bytes
from .tensorfile import TensorFileError

__all__ = [
    "CheckpointError",
    "Checkpoint",
    "save_checkpoint",
    "load_checkpoint",
    "atomic_write_text",
    "checkpoint_files",
    "load_run_state",
    "read_metrics",
    "infer_config",
]

MODEL_FILE = "model.safetensors"
META_FILE = "meta.json"
OPTIMIZER_FILE = "optimizer.safetensors"
METHOD_FILE = "method.safetensors"
METRICS_FILE = "metrics.jsonl"
COMMAND_FILE = "command.txt"
FORMAT = "st_app.checkpoint/1"


class CheckpointError(ValueError):
    """A checkpoint cannot be used; the message names the file and the reason."""


@dataclass
class Checkpoint:
    model: ResidualNet
    meta: dict[str, Any]
    path: Path

    @property
    def info(self) -> RunInfo:
        """Method, data set, epoch and architecture, read from the metadata in one place."""
        return run_info(self.meta)

    @property
    def id(self) -> str:
        """A short identity for reports: the run folder or file name plus its epoch."""
        epoch = self.meta.get("epoch")
        return f"{self.path}" + (f"@epoch{epoch}" if epoch is not None else "")


# ----------------------------------------------------------------------------- writing
def _atomic(path: Path, write: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Write a text file whole (temp + rename); for files outside a run's transaction."""

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())

    _atomic(path, write)


def _full_meta(model: ResidualNet, meta: dict[str, Any]) -> str:
    meta = dict(meta)
    meta["format"] = FORMAT
    meta["model"] = model.config.to_dict()
    meta["branch_scales"] = [float(b.branch_scale) for b in model.blocks]
    from .. import __version__

    meta.setdefault("package_version", __version__)
    return json.dumps(meta, indent=2, sort_keys=True)


def checkpoint_files(
    model: ResidualNet,
    meta: dict[str, Any],
    optimizer: torch.optim.Optimizer | None = None,
    method_modules: torch.nn.Module | None = None,
) -> dict[str, bytes]:
    """The files of one checkpoint (name -> bytes), to commit together into a run folder.

    Every safetensors file carries a checksum of its tensor data (:mod:`.tensorfile`).
    """
    text = _full_meta(model, meta)
    files = {MODEL_FILE: tensorfile.encode(model.state_dict(), {"st_app": text}), META_FILE: (text + "\n").encode()}
    if optimizer is not None:
        opt_tensors, opt_meta = _optimizer_to_flat(optimizer)
        files[OPTIMIZER_FILE] = tensorfile.encode(opt_tensors, {"st_app_optimizer": json.dumps(opt_meta)})
    if method_modules is not None:
        files[METHOD_FILE] = tensorfile.encode(method_modules.state_dict())
    return files


def save_checkpoint(
    out: str | Path,
    model: ResidualNet,
    meta: dict[str, Any],
    optimizer: torch.optim.Optimizer | None = None,
    *,
    overwrite: bool = True,
) -> Path:
    """Write weights and metadata; ``out`` is a run folder or a lone ``.safetensors`` path.

    A run folder gets one transaction under its lock (the files it already holds and that are
    not rewritten, like ``metrics.jsonl``, are carried over). A lone file is written
    atomically and embeds its metadata, which is what loads; the ``.json`` beside it is a
    readable copy written after it (a kill in between leaves it stale, never the checkpoint).
    Neither may replace a run's own files or a non-regular file, nor an existing file
    unless ``overwrite``.
    """
    out = Path(out)
    files = checkpoint_files(model, meta, optimizer)
    if out.suffix != ".safetensors":
        epoch = meta.get("epoch")
        with RunFolder(out, writer=True) as run:
            run.commit(files, epoch=epoch if isinstance(epoch, int) else None)
        return out / MODEL_FILE
    write_bytes(out, files[MODEL_FILE], force=overwrite, what="checkpoint")
    write_bytes(out.with_suffix(".json"), files[META_FILE], force=True, what="checkpoint metadata")
    return out


def _optimizer_to_flat(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    for idx, st in sd["state"].items():
        for key, val in st.items():
            if isinstance(val, torch.Tensor):
                tensors[f"{idx}.{key}"] = val.detach().to("cpu").contiguous()
    return tensors, {"param_groups": sd["param_groups"]}


def _view(source: Path | RunView, name: str) -> tuple[bytes | None, Path]:
    """One file of a consistent epoch: from a view already read, or read now."""
    if isinstance(source, RunView):
        return source.get(name), source.path / name
    try:
        return read_run(source, [name]).get(name), Path(source) / name
    except RunFolderError as exc:
        raise CheckpointError(str(exc)) from None


def _decode(data: bytes, path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    try:
        return tensorfile.decode(data)
    except TensorFileError as exc:
        if exc.damaged:
            raise CheckpointError(f"{path} is damaged: {exc}; it was not loaded") from None
        raise CheckpointError(f"{path} is not a readable safetensors file (truncated or corrupt?): {exc}") from None


def load_optimizer_state(source: Path | RunView, optimizer: torch.optim.Optimizer) -> bool:
    """Restore momentum buffers saved beside the weights; False when there are none."""
    data, path = _view(source, OPTIMIZER_FILE)
    if data is None:
        return False
    flat, header_meta = _decode(data, path)
    try:
        header = json.loads(header_meta["st_app_optimizer"])
    except (KeyError, ValueError) as exc:
        raise CheckpointError(f"optimizer state {path} is corrupt: {exc}") from None
    state: dict[int, dict[str, torch.Tensor]] = {}
    try:
        for key, val in flat.items():
            idx, name = key.split(".", 1)
            state.setdefault(int(idx), {})[name] = val
    except ValueError:
        raise CheckpointError(f"optimizer state {path} is corrupt: bad tensor name") from None
    device = next(p.device for g in optimizer.param_groups for p in g["params"])
    state = {i: {k: v.to(device) for k, v in st.items()} for i, st in state.items()}
    try:
        optimizer.load_state_dict({"state": state, "param_groups": header["param_groups"]})
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"optimizer state {path} does not fit this model: {exc}") from None
    return True


def save_method_state(run_dir: Path, modules: torch.nn.Module | None) -> None:
    """Write the state of a method's own trainable parts alone (the Trainer commits it with its epoch)."""
    if modules is None:
        return
    with RunFolder(run_dir, writer=True) as run:
        run.commit({METHOD_FILE: tensorfile.encode(modules.state_dict())})


def load_method_state(source: Path | RunView, modules: torch.nn.Module | None) -> None:
    """Restore what :func:`checkpoint_files` wrote; a method with parts needs the file."""
    if modules is None:
        return
    data, path = _view(source, METHOD_FILE)
    try:
        if data is None:
            raise FileNotFoundError(f"{path} is missing")
        state, _ = _decode(data, path)
        device = next((p.device for p in modules.parameters()), torch.device("cpu"))
        modules.load_state_dict({k: v.to(device) for k, v in state.items()})
    except (OSError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"method state {path} is missing or does not fit: {first}") from None


# ----------------------------------------------------------------------------- reading
def _read_safetensors(path: Path, data: bytes | None = None) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
    if data is None:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise CheckpointError(f"cannot read {describe_os_error(exc, path)}") from None
    tensors, header = _decode(data, path)
    meta = None
    if "st_app" in header:
        try:
            meta = json.loads(header["st_app"])
        except ValueError:
            raise CheckpointError(f"{path}: the embedded metadata is not valid JSON") from None
    return tensors, meta


def _parse_json(data: bytes, path: Path) -> dict[str, Any]:
    try:
        meta = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise CheckpointError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path} does not hold a JSON object")
    return meta


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"cannot read {describe_os_error(exc, path)}") from None
    return _parse_json(data, path)


def _read_torch(path: Path) -> dict[str, torch.Tensor]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # protocol notes from the safe unpickler, not for users
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(
            f"refused to load {path}: it contains Python objects other than tensors (it could run "
            "code when unpickled); only plain state_dicts of tensors are accepted"
        ) from None
    except (RuntimeError, OSError, EOFError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path} is not a readable PyTorch file (truncated or corrupt?): {first}") from None
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "model_state_dict"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path} does not hold a state_dict of tensors")
    # DataParallel / DDP prefixes
    if obj and all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return obj


def infer_config(state: dict[str, torch.Tensor], image_size: int | None = None, arch: str | None = None) -> ModelConfig:
    """Recognise the model family, size and shape of a foreign state_dict (each family knows its own)."""
    return _recognise(state, image_size, arch)[0]


def _recognise(state: dict[str, torch.Tensor], image_size: int | None,
               arch: str | None) -> tuple[ModelConfig, dict[str, torch.Tensor]]:
    try:
        return recognise_state_dict(state, image_size, arch)
    except ValueError as exc:
        raise CheckpointError(str(exc)) from None


def build_from_state(config: ModelConfig, state: dict[str, torch.Tensor], source: Path) -> ResidualNet:
    """Build the model and load weights, naming every missing, unexpected or mis-shaped tensor."""
    model = model_from_config(config, empty=True)  # no weights to initialise: they are loaded next
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k} has shape {list(state[k].shape)} in the file but {list(own[k].shape)} in {config.arch}"
        for k in own
        if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} tensors (first: {missing[0]})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected tensors (first: {unexpected[0]})")
    if shapes:
        problems.append(shapes[0] + (f" (and {len(shapes) - 1} more)" if len(shapes) > 1 else ""))
    if problems:
        raise CheckpointError(f"{source} does not match {config.arch}: " + "; ".join(problems))
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()}, assign=True)
    return model


def _run_view(folder: Path, names: list[str]) -> RunView:
    try:
        return read_run(folder, names)
    except RunFolderError as exc:
        raise CheckpointError(str(exc)) from None


def _load(
    path: Path, names: list[str], arch: str | None, image_size: int | None, device: torch.device | str
) -> tuple[Checkpoint, RunView | None]:
    path = path.expanduser()
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    meta: dict[str, Any] | None = None
    meta_source: Path | str = path
    view: RunView | None = None
    folder = path if path.is_dir() else path.parent
    if path.is_dir() or (path.name == MODEL_FILE and has_run(folder)):
        # a run folder (or its model file): one consistent, checked epoch
        view = _run_view(folder, [MODEL_FILE, META_FILE, *names])
        data = view.get(MODEL_FILE)
        if data is None:
            raise CheckpointError(f"{folder} is not a run folder: {MODEL_FILE} is missing")
        state, meta = _read_safetensors(folder / MODEL_FILE, data)
        meta_source = f"{folder / MODEL_FILE} (embedded metadata)"
        meta_bytes = view.get(META_FILE)
        if meta_bytes is not None:
            meta, meta_source = _parse_json(meta_bytes, folder / META_FILE), folder / META_FILE
    elif path.suffix == ".safetensors":
        state, meta = _read_safetensors(path)
        meta_source = f"{path} (embedded metadata)"
        for side in (path.with_suffix(".json"), path.parent / META_FILE):
            if meta is None and side.is_file():
                meta, meta_source = _read_json(side), side
    elif path.suffix in (".pt", ".pth", ".bin", ".ckpt"):
        state = _read_torch(path)
    elif path.suffix == ".json":
        return _load(path.parent, names, arch, image_size, device)
    else:
        raise CheckpointError(f"{path}: unknown checkpoint type (expected a run folder, .safetensors, .pt or .pth)")

    if meta is not None:
        try:
            check_meta(meta, meta_source)
        except MetaError as exc:
            raise CheckpointError(str(exc)) from None
        if "model" not in meta:
            raise CheckpointError(f"{meta_source}: metadata has no model description")
        try:
            config = ModelConfig.from_dict(meta["model"])
        except ValueError as exc:
            raise CheckpointError(f"{meta_source}: {exc}") from None
        if arch is not None and arch != config.arch:
            raise CheckpointError(f"{path} holds a {config.arch}, not the requested {arch}")
    else:
        meta = {"foreign": True}
        config, state = _recognise(state, image_size, arch)
        if arch is not None and arch != config.arch:
            raise CheckpointError(f"{path} looks like a {config.arch}, not the requested {arch}")
    try:
        model = build_from_state(config, state, path)
    except ValueError as exc:  # an unknown architecture name in the metadata
        raise CheckpointError(f"{meta_source}: {exc}") from None
    scales = meta.get("branch_scales")
    if scales is not None:
        if len(scales) != len(model.blocks):
            raise CheckpointError(f"{meta_source}: field 'branch_scales' has {len(scales)} entries for "
                                  f"{len(model.blocks)} blocks")
        for block, sc in zip(model.blocks, scales):
            block.branch_scale = float(sc)
    model.to(device).eval()
    return Checkpoint(model=model, meta=meta, path=path), view


def load_checkpoint(
    path: str | Path,
    *,
    arch: str | None = None,
    image_size: int | None = None,
    device: torch.device | str = "cpu",
) -> Checkpoint:
    """Load a run folder, a ``.safetensors`` file, or a foreign ``.pt``/``.pth`` state_dict.

    A run folder gives its committed epoch, every file checked against ``manifest.json``;
    metadata passes :func:`~st_app.core.meta_schema.check_meta` before any field is used.
    """
    return _load(Path(path), [], arch, image_size, device)[0]


def load_run_state(path: str | Path, device: torch.device | str = "cpu") -> tuple[Checkpoint, RunView]:
    """A run folder's checkpoint plus the rest of the same epoch (optimizer, method, metrics)."""
    loaded, view = _load(Path(path), [OPTIMIZER_FILE, METHOD_FILE, METRICS_FILE, COMMAND_FILE], None, None, device)
    if view is None:
        raise CheckpointError(f"{path} is not a run folder")
    return loaded, view


def read_metrics(run_dir: str | Path | RunView) -> list[dict[str, Any]]:
    """The per-epoch lines of ``metrics.jsonl`` of the committed epoch (a torn line is skipped)."""
    view = run_dir if isinstance(run_dir, RunView) else _run_view(Path(run_dir), [METRICS_FILE])
    data = view.get(METRICS_FILE)
    if data is None:
        return []
    rows = []
    for line in data.decode("utf-8", errors="replace").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows
