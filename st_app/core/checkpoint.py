"""Checkpoints: safetensors weights + JSON metadata, never pickles of our own.

A run folder holds ``model.safetensors`` (the metadata is also embedded in its header, so a
lone file is self-describing), ``meta.json``, ``optimizer.safetensors`` and ``metrics.jsonl``.
Foreign ``.pt``/``.pth`` state_dicts (e.g. torchvision weights a user already has) are read
with ``torch.load(weights_only=True)`` only, which refuses to run code from the file.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .checkpoint_meta import RunInfo, run_info
from .models import ModelConfig, ResidualNet
from .models.resnet import CIFAR_DEPTHS, IMAGENET_SPECS

__all__ = [
    "CheckpointError",
    "Checkpoint",
    "save_checkpoint",
    "load_checkpoint",
    "atomic_write_text",
    "read_metrics",
    "infer_config",
]

MODEL_FILE = "model.safetensors"
META_FILE = "meta.json"
OPTIMIZER_FILE = "optimizer.safetensors"
METHOD_FILE = "method.safetensors"
METRICS_FILE = "metrics.jsonl"
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
    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())

    _atomic(path, write)


def _tensors(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous() for k, v in state.items()}


def save_checkpoint(
    out: str | Path,
    model: ResidualNet,
    meta: dict[str, Any],
    optimizer: torch.optim.Optimizer | None = None,
) -> Path:
    """Write weights and metadata atomically; ``out`` is a run folder or a ``.safetensors`` path."""
    out = Path(out)
    meta = dict(meta)
    meta["format"] = FORMAT
    meta["model"] = model.config.to_dict()
    meta["branch_scales"] = [float(b.branch_scale) for b in model.blocks]
    from .. import __version__

    meta.setdefault("package_version", __version__)
    text = json.dumps(meta, indent=2, sort_keys=True)
    if out.suffix == ".safetensors":
        weights_path, meta_path = out, out.with_suffix(".json")
    else:
        weights_path, meta_path = out / MODEL_FILE, out / META_FILE
    tensors = _tensors(model.state_dict())
    _atomic(weights_path, lambda tmp: save_file(tensors, tmp, metadata={"st_app": text}))
    if optimizer is not None:
        opt_tensors, opt_meta = _optimizer_to_flat(optimizer)
        _atomic(
            weights_path.with_name(OPTIMIZER_FILE),
            lambda tmp: save_file(opt_tensors, tmp, metadata={"st_app_optimizer": json.dumps(opt_meta)}),
        )
    atomic_write_text(meta_path, text + "\n")
    return weights_path


def _optimizer_to_flat(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    for idx, st in sd["state"].items():
        for key, val in st.items():
            if isinstance(val, torch.Tensor):
                tensors[f"{idx}.{key}"] = val.detach().to("cpu").contiguous()
    return tensors, {"param_groups": sd["param_groups"]}


def load_optimizer_state(run_dir: Path, optimizer: torch.optim.Optimizer) -> bool:
    """Restore momentum buffers saved beside the weights; False when there are none."""
    path = run_dir / OPTIMIZER_FILE
    if not path.exists():
        return False
    try:
        flat = load_file(str(path))
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as fh:
            header = json.loads((fh.metadata() or {})["st_app_optimizer"])
    except (SafetensorError, OSError, KeyError, ValueError) as exc:
        raise CheckpointError(f"optimizer state {path} is corrupt: {exc}") from None
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, val in flat.items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = val
    device = next(p.device for g in optimizer.param_groups for p in g["params"])
    state = {i: {k: v.to(device) for k, v in st.items()} for i, st in state.items()}
    try:
        optimizer.load_state_dict({"state": state, "param_groups": header["param_groups"]})
    except (ValueError, KeyError) as exc:
        raise CheckpointError(f"optimizer state {path} does not fit this model: {exc}") from None
    return True


def save_method_state(run_dir: Path, modules: torch.nn.Module | None) -> None:
    """Write the state of a method's own trainable parts (auxiliary heads...), if it has any."""
    if modules is None:
        return
    tensors = _tensors(modules.state_dict())
    _atomic(Path(run_dir) / METHOD_FILE, lambda tmp: save_file(tensors, tmp))


def load_method_state(run_dir: Path, modules: torch.nn.Module | None) -> None:
    """Restore what :func:`save_method_state` wrote; a method with parts needs the file."""
    if modules is None:
        return
    path = Path(run_dir) / METHOD_FILE
    try:
        state = load_file(str(path))
        device = next((p.device for p in modules.parameters()), torch.device("cpu"))
        modules.load_state_dict({k: v.to(device) for k, v in state.items()})
    except (SafetensorError, OSError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"method state {path} is missing or does not fit: {first}") from None


# ----------------------------------------------------------------------------- reading
def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            header = fh.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path} is not a readable safetensors file (truncated or corrupt?): {first}") from None
    meta = None
    if "st_app" in header:
        try:
            meta = json.loads(header["st_app"])
        except ValueError:
            raise CheckpointError(f"{path}: the embedded metadata is not valid JSON") from None
    return tensors, meta


def _read_json(path: Path) -> dict[str, Any]:
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path} does not hold a JSON object")
    return meta


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


def infer_config(state: dict[str, torch.Tensor], image_size: int | None = None) -> ModelConfig:
    """Recognise a ResNet family and depth from state_dict names and shapes."""
    if "conv1.weight" not in state or "fc.weight" not in state:
        raise CheckpointError("not a ResNet state_dict: conv1.weight or fc.weight is missing")
    conv1 = state["conv1.weight"]
    in_ch, kernel = int(conv1.shape[1]), int(conv1.shape[-1])
    num_classes = int(state["fc.weight"].shape[0])
    depths: dict[int, int] = {}
    for key in state:
        m = re.match(r"layer(\d+)\.(\d+)\.", key)
        if m:
            s, i = int(m.group(1)), int(m.group(2))
            depths[s] = max(depths.get(s, 0), i + 1)
    per_stage = [depths[s] for s in sorted(depths)]
    bottleneck = any(k.endswith("conv3.weight") for k in state)
    if kernel == 3 and len(per_stage) == 3:
        for name, n in CIFAR_DEPTHS.items():
            if per_stage == [n] * 3:
                return ModelConfig(name, num_classes, in_ch, image_size or 32)
    if kernel == 7 and len(per_stage) == 4:
        from .models.blocks import Bottleneck

        for name, (block, ds) in IMAGENET_SPECS.items():
            if ds == per_stage and (block is Bottleneck) == bottleneck:
                return ModelConfig(name, num_classes, in_ch, image_size or 224)
    raise CheckpointError(f"unrecognised ResNet layout: stages {per_stage}, stem kernel {kernel}")


def build_from_state(config: ModelConfig, state: dict[str, torch.Tensor], source: Path) -> ResidualNet:
    """Build the model and load weights, naming every missing, unexpected or mis-shaped tensor."""
    model = ResidualNet(config)
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
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()})
    return model


def load_checkpoint(
    path: str | Path,
    *,
    arch: str | None = None,
    image_size: int | None = None,
    device: torch.device | str = "cpu",
) -> Checkpoint:
    """Load a run folder, a ``.safetensors`` file, or a foreign ``.pt``/``.pth`` state_dict."""
    path = Path(path).expanduser()
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    meta: dict[str, Any] | None = None
    if path.is_dir():
        weights = path / MODEL_FILE
        if not weights.exists():
            raise CheckpointError(f"{path} is not a run folder: {MODEL_FILE} is missing")
        state, meta = _read_safetensors(weights)
        if (path / META_FILE).exists():
            meta = _read_json(path / META_FILE)
    elif path.suffix == ".safetensors":
        state, meta = _read_safetensors(path)
        side = path.with_suffix(".json")
        if meta is None and side.exists():
            meta = _read_json(side)
        if meta is None and (path.parent / META_FILE).exists():
            meta = _read_json(path.parent / META_FILE)
    elif path.suffix in (".pt", ".pth", ".bin", ".ckpt"):
        state = _read_torch(path)
    elif path.suffix == ".json":
        return load_checkpoint(path.parent, arch=arch, image_size=image_size, device=device)
    else:
        raise CheckpointError(f"{path}: unknown checkpoint type (expected a run folder, .safetensors, .pt or .pth)")

    if meta is not None:
        if "model" not in meta:
            raise CheckpointError(f"{path}: metadata has no model description")
        try:
            config = ModelConfig.from_dict(meta["model"])
        except ValueError as exc:
            raise CheckpointError(f"{path}: {exc}") from None
        if arch is not None and arch != config.arch:
            raise CheckpointError(f"{path} holds a {config.arch}, not the requested {arch}")
    else:
        meta = {"foreign": True}
        config = infer_config(state, image_size)
        if arch is not None and arch != config.arch:
            raise CheckpointError(f"{path} looks like a {config.arch}, not the requested {arch}")
    model = build_from_state(config, state, path)
    scales = meta.get("branch_scales")
    if scales is not None:
        if len(scales) != len(model.blocks):
            raise CheckpointError(f"{path}: branch_scales has {len(scales)} entries for {len(model.blocks)} blocks")
        for block, sc in zip(model.blocks, scales):
            block.branch_scale = float(sc)
    model.to(device).eval()
    return Checkpoint(model=model, meta=meta, path=path)


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """The per-epoch lines of ``metrics.jsonl`` (a torn last line is skipped)."""
    path = Path(run_dir) / METRICS_FILE
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
    return rows
