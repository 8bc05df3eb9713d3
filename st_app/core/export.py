"""Export one sub-network of a ResidualNet to ONNX and check the file against PyTorch.

A plan is baked into the exported graph (dropped branches simply do not appear), so the
file is a plain feed-forward net that any ONNX runtime can serve without st_app. Torch-only
on purpose: the command line and the GUI both call this, and neither may drag Qt in here.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .models import ResidualNet
from .plan import SubnetPlan
from .safeio import atomic_output, check_output_file

__all__ = ["ExportError", "VerifyReport", "available_providers", "export_onnx", "verify_onnx"]

INPUT_NAME = "images"
OUTPUT_NAME = "logits"
# Trace with a batch of 2: a batch of 1 invites exporters to specialise the batch axis.
_TRACE_BATCH = 2
# Highest opset the TorchScript ("legacy") exporter can write; above it only dynamo can.
_LEGACY_MAX_OPSET = 20
_META_PREFIX = "st_app."


class ExportError(ValueError):
    """Export or verification failed for a reason worth one clear line to the user."""


@dataclass(frozen=True)
class VerifyReport:
    """How closely the ONNX file reproduces PyTorch's eval-mode logits."""

    max_abs_diff: float
    top1_agreement: float
    provider: str
    n_images: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _PlanModule(nn.Module):
    """Freezes a plan into ``forward(images)`` so exporters see a one-input module."""

    def __init__(self, model: ResidualNet, plan: SubnetPlan | None) -> None:
        super().__init__()
        self.model = model
        self.plan = plan

    def forward(self, images: Tensor) -> Tensor:
        return self.model(images, self.plan)


# ---------------------------------------------------------------------- helpers
def _check_plan(model: ResidualNet, plan: SubnetPlan | None) -> SubnetPlan:
    """Fail before exporting, not halfway through tracing, when the plan cannot fit."""
    if plan is None:
        return model.layout.full_plan()
    if plan.layout != model.layout:
        raise ExportError(
            f"plan {plan} was made for another network layout (depths {plan.layout.depths}, "
            f"this network has {model.layout.depths})"
        )
    return plan


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    first = text.splitlines()[0].strip() if text else ""
    return first or type(exc).__name__


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence exporter chatter: deprecation/tracer warnings and dynamo's progress prints."""
    sink = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        warnings.simplefilter("ignore")
        yield


def _export_legacy(module: nn.Module, example: Tensor, path: str, opset: int | None) -> None:
    """TorchScript exporter: ~0.1-1 s for a small ResNet, one self-contained file."""
    torch.onnx.export(
        module,
        (example,),
        path,
        dynamo=False,
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
        opset_version=opset,
        do_constant_folding=True,
    )


def _export_dynamo(module: nn.Module, example: Tensor, path: str, opset: int | None) -> None:
    """torch.export-based exporter: the fallback (several seconds per model, even warm)."""
    batch = torch.export.Dim("batch", min=1)
    torch.onnx.export(
        module,
        (example,),
        path,
        dynamo=True,
        external_data=False,
        verbose=False,
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        dynamic_shapes={"images": {0: batch}},
        opset_version=opset,
    )


# ----------------------------------------------------------------------- export
def export_onnx(
    model: ResidualNet,
    plan: SubnetPlan | None,
    path: str | Path,
    *,
    opset: int | None = None,
    overwrite: bool = True,
) -> Path:
    """Write the eval-mode sub-network ``plan`` (None: the full net) to ``path`` as ONNX.

    The input ``images`` is (N, C, H, W) with a dynamic N, the output ``logits`` is
    (N, classes). Eval-mode behaviour (BatchNorm running statistics, stochastic-depth
    ``branch_scale``) is baked in. A CPU copy is exported, so the caller's model keeps its
    device, training flag and weights. The file is written atomically; a run's own files and
    non-regular files (``/dev/null``) are refused, and an existing file unless ``overwrite``
    (the app asks first, the command line needs ``--force``).
    """
    import onnx

    plan = _check_plan(model, plan)
    if opset is not None and not 7 <= int(opset) <= 23:
        raise ExportError(f"unsupported ONNX opset {opset}: choose between 7 and 23")
    cfg = model.config
    dest = check_output_file(path, force=overwrite, what="ONNX file")

    # Exporting a CPU copy leaves the caller's model (device, mode, weights) untouched.
    with torch.no_grad():
        clone = copy.deepcopy(model).cpu().eval()
    wrapper = _PlanModule(clone, plan).eval()
    example = torch.zeros(_TRACE_BATCH, cfg.in_channels, cfg.image_size, cfg.image_size)

    with atomic_output(dest, force=overwrite, what="ONNX file") as tmp_path:
        tmp = str(tmp_path)
        exporters = [_export_dynamo] if opset is not None and opset > _LEGACY_MAX_OPSET else [
            _export_legacy,
            _export_dynamo,
        ]
        errors: list[str] = []
        for exporter in exporters:
            try:
                with _quiet(), torch.no_grad():
                    exporter(wrapper, example, tmp, opset)
                break
            except OSError:
                raise  # a full disk or an unwritable folder: one line naming the path
            except Exception as exc:  # noqa: BLE001 - any exporter failure: try the next one
                errors.append(f"{exporter.__name__.removeprefix('_export_')}: {_one_line(exc)}")
        else:
            raise ExportError(f"ONNX export of plan {plan} failed ({'; '.join(errors)})")

        proto = onnx.load(tmp)
        meta = {
            "plan": str(plan),
            "config": json.dumps(cfg.to_dict(), sort_keys=True),
        }
        for key, value in meta.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = _META_PREFIX + key, value
        try:
            onnx.checker.check_model(proto)
        except Exception as exc:  # noqa: BLE001 - onnx raises several checker error types
            raise ExportError(f"exported ONNX graph failed the checker: {_one_line(exc)}") from None
        onnx.save(proto, tmp)
    return dest


# ------------------------------------------------------------------- providers
def _ort() -> Any:
    """Import onnxruntime with its default logger at error level (no warning chatter)."""
    try:
        import onnxruntime as ort
    except ImportError as exc:  # pragma: no cover - onnxruntime is a dependency
        raise ExportError(f"onnxruntime is not installed: {exc}") from None
    with contextlib.suppress(Exception):
        ort.set_default_logger_severity(3)
    return ort


def available_providers() -> list[str]:
    """Providers that will really load: CUDA only when torch sees a GPU, then CPU.

    onnxruntime-gpu lists CUDAExecutionProvider even on machines without a GPU or CUDA
    libraries, and then prints a red error when a session asks for it; torch's view of the
    machine is the reliable test.
    """
    ort = _ort()
    providers: list[str] = []
    if torch.cuda.is_available():
        preload = getattr(ort, "preload_dlls", None)
        if preload is not None:
            with contextlib.suppress(Exception):
                preload()
        if "CUDAExecutionProvider" in ort.get_available_providers():
            providers.append("CUDAExecutionProvider")
    providers.append("CPUExecutionProvider")
    return providers


def _session(path: Path) -> Any:
    """An inference session on the best provider, falling back to CPU if CUDA fails."""
    ort = _ort()
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    attempts: list[list[Any]] = []
    if "CUDAExecutionProvider" in available_providers():
        # No TF32: verification measures the export, not reduced-precision matmuls.
        attempts.append([("CUDAExecutionProvider", {"use_tf32": "0"}), "CPUExecutionProvider"])
        attempts.append(["CUDAExecutionProvider", "CPUExecutionProvider"])
    attempts.append(["CPUExecutionProvider"])
    last: Exception | None = None
    for providers in attempts:
        try:
            return ort.InferenceSession(str(path), sess_options=opts, providers=providers)
        except Exception as exc:  # noqa: BLE001 - ORT raises its own exception types
            last = exc
    raise ExportError(f"onnxruntime cannot load {path}: {_one_line(last or RuntimeError())}")


# ----------------------------------------------------------------------- verify
def _load_checked(path: Path) -> Any:
    """Load and check the file so a corrupt one fails with one line, not a protobuf trace."""
    import onnx

    if not path.is_file():
        raise ExportError(f"no ONNX file at {path}")
    try:
        proto = onnx.load(str(path))
        onnx.checker.check_model(proto)
    except Exception as exc:  # noqa: BLE001 - protobuf/onnx raise many types
        raise ExportError(f"{path} is not a valid ONNX model: {_one_line(exc)}") from None
    if len(proto.graph.node) == 0 or not proto.graph.input:
        raise ExportError(f"{path} is not a valid ONNX model: the graph is empty")
    return proto


def _check_matches(proto: Any, model: ResidualNet, plan: SubnetPlan, path: Path) -> None:
    """Refuse to compare a file against a model or plan it was not exported from."""
    meta = {p.key: p.value for p in proto.metadata_props}
    saved_plan = meta.get(_META_PREFIX + "plan")
    if saved_plan is not None and saved_plan != str(plan):
        raise ExportError(f"{path} holds plan {saved_plan}, not {plan}")
    cfg = model.config
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    want = (cfg.in_channels, cfg.image_size, cfg.image_size)
    got = tuple(d.dim_value if d.HasField("dim_value") else None for d in dims[1:])
    if len(dims) != 4 or any(g is not None and g != w for g, w in zip(got, want)):
        shown = "x".join("?" if g is None else str(g) for g in got)
        raise ExportError(
            f"{path} expects images of {shown}, the model takes "
            f"{cfg.in_channels}x{cfg.image_size}x{cfg.image_size}"
        )


def _reference_logits(model: ResidualNet, plan: SubnetPlan, images: Tensor) -> Tensor:
    """PyTorch eval-mode logits on CPU (no TF32, no device copy of the images needed)."""
    on_cpu = all(p.device.type == "cpu" for p in model.parameters())
    net = model if on_cpu else copy.deepcopy(model).cpu()
    was_training = net.training
    try:
        net.eval()
        with torch.no_grad():
            return net(images, plan).float()
    finally:
        net.train(was_training)


def verify_onnx(
    model: ResidualNet,
    plan: SubnetPlan | None,
    path: str | Path,
    *,
    images: Tensor | None = None,
    n: int = 16,
    seed: int = 0,
) -> VerifyReport:
    """Run ``path`` in onnxruntime and compare with ``model(x, plan)`` in eval mode.

    Without ``images``, ``n`` seeded random images are used. The default batch (16) differs
    from the export's trace batch (2), and a batch of one is run as well, so a wrongly fixed
    batch axis fails here rather than in production.
    """
    path = Path(path)
    plan = _check_plan(model, plan)
    proto = _load_checked(path)
    _check_matches(proto, model, plan, path)
    cfg = model.config
    if images is None:
        if n < 1:
            raise ExportError(f"need at least one image to verify, got n={n}")
        gen = torch.Generator().manual_seed(seed)
        images = torch.randn(n, cfg.in_channels, cfg.image_size, cfg.image_size, generator=gen)
    images = images.detach().to("cpu", torch.float32).contiguous()
    if images.ndim != 4 or images.shape[0] < 1:
        raise ExportError(f"images must be a non-empty (N, C, H, W) batch, got {tuple(images.shape)}")

    expected = _reference_logits(model, plan, images)
    session = _session(path)
    feed_name = session.get_inputs()[0].name
    batches = [images] if images.shape[0] == 1 else [images, images[:1]]
    diff = 0.0
    got_full: Tensor | None = None
    try:
        for batch in batches:
            (out,) = session.run(None, {feed_name: batch.numpy()})
            got = torch.from_numpy(out).float()
            if got.shape != (batch.shape[0], cfg.num_classes):
                raise ExportError(
                    f"{path} returned logits of shape {tuple(got.shape)}, expected "
                    f"{(batch.shape[0], cfg.num_classes)}"
                )
            diff = max(diff, float((got - expected[: batch.shape[0]]).abs().max()))
            got_full = got if got_full is None else got_full
    except ExportError:
        raise
    except Exception as exc:  # noqa: BLE001 - ORT run errors (shape, type)
        raise ExportError(f"onnxruntime failed to run {path}: {_one_line(exc)}") from None
    assert got_full is not None
    agree = float((got_full.argmax(1) == expected.argmax(1)).float().mean())
    return VerifyReport(
        max_abs_diff=diff,
        top1_agreement=agree,
        provider=str(session.get_providers()[0]),
        n_images=int(images.shape[0]),
    )
