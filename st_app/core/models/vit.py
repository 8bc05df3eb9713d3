"""Vision transformers as plan-aware networks: a digits-size ``vit-micro``, a CIFAR-size
``vit-tiny``, and torchvision's ``vit_b_16`` ... ``vit_h_14`` by name (same module names, so
their state_dicts load unchanged).

Pre-norm blocks ``x + attn(ln(x))`` then ``x + mlp(ln(x))``, a class token read by the head.
A plan unit is one transformer block (``granularity="block"``) or each residual half
separately (``"half"``: units ``2i`` attention, ``2i+1`` MLP of block ``i``). All units map
tokens to tokens of the same width, so any unit may be deleted and any two permuted; the one
group is the encoder. LayerNorm keeps no running statistics, so a sub-net's accuracy does not
depend on a BN setting: "main-net statistics" and "recalibrated" give the same numbers.
"""

from __future__ import annotations

import contextlib
import math
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..plan import BlockShape, NetLayout, SubnetPlan
from .base import GRANULARITIES, ModelConfig, Op, ResidualNet, StemSummary
from .registry import Family, StateDict, UnknownLayout

__all__ = ["EncoderBlock", "FAMILY", "ResidualHalf", "VIT_SPECS", "ViTSpec", "VisionTransformer"]


@dataclass(frozen=True)
class ViTSpec:
    patch: int
    layers: int
    heads: int
    dim: int
    mlp_dim: int
    pool: str = "token"  # the head reads the class token ("token", torchvision) or the mean of all tokens


VIT_SPECS = {
    "vit-micro": ViTSpec(2, 6, 4, 64, 128),
    "vit-tiny": ViTSpec(4, 12, 3, 192, 768),
    "vit_b_16": ViTSpec(16, 12, 12, 768, 3072),
    "vit_b_32": ViTSpec(32, 12, 12, 768, 3072),
    "vit_l_16": ViTSpec(16, 24, 16, 1024, 4096),
    "vit_l_32": ViTSpec(32, 24, 16, 1024, 4096),
    "vit_h_14": ViTSpec(14, 32, 16, 1280, 5120),
}

_LayerNorm = partial(nn.LayerNorm, eps=1e-6)


@contextlib.contextmanager
def _exportable_attention() -> Iterator[None]:
    """While exporting to ONNX, attention takes its plain path: the fused inference kernel
    (``aten::_native_multi_head_attention``) has no ONNX form; otherwise nothing changes."""
    mha = getattr(torch.backends, "mha", None)
    if mha is None or not torch.onnx.is_in_onnx_export():
        yield
        return
    was = mha.get_fastpath_enabled()
    mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        mha.set_fastpath_enabled(was)


class MLPBlock(nn.Sequential):
    """Linear-GELU-Dropout-Linear-Dropout (torchvision's ``MLPBlock`` names: 0 and 3)."""

    def __init__(self, dim: int, mlp_dim: int, dropout: float) -> None:
        super().__init__(nn.Linear(dim, mlp_dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(mlp_dim, dim),
                         nn.Dropout(dropout))
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.normal_(m.bias, std=1e-6)


class EncoderBlock(nn.Module):
    """Two residual halves: ``x + attention(ln_1(x))``, then ``x + mlp(ln_2(x))`` (torchvision's names)."""

    def __init__(self, heads: int, dim: int, mlp_dim: int, dropout: float = 0.0, attention_dropout: float = 0.0) -> None:
        super().__init__()
        self.ln_1 = _LayerNorm(dim)
        self.self_attention = nn.MultiheadAttention(dim, heads, dropout=attention_dropout, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.ln_2 = _LayerNorm(dim)
        self.mlp = MLPBlock(dim, mlp_dim, dropout)
        self.shape = BlockShape(dim, dim, 1)
        # stochastic depth scales branches at evaluation: the whole block's, or one half's
        self.branch_scale: float = 1.0
        self.half_scales = [1.0, 1.0]

    def half_modules(self, half: int) -> list[nn.Module]:
        return [self.ln_1, self.self_attention, self.dropout] if half == 0 else [self.ln_2, self.mlp]

    def run_half(self, x: Tensor, half: int) -> Tensor:
        if half == 0:
            y = self.ln_1(x)
            with _exportable_attention():
                y, _ = self.self_attention(y, y, y, need_weights=False)
            y = self.dropout(y)
        else:
            y = self.mlp(self.ln_2(x))
        scale = self.branch_scale * self.half_scales[half]
        if scale != 1.0 and not self.training:
            y = y * scale
        return y + x if half == 0 else x + y

    def forward(self, x: Tensor, half: int | None = None) -> Tensor:
        """Both halves, or only ``half`` (0: attention, 1: MLP); one entry point, so ``compile()`` covers both."""
        if half is not None:
            return self.run_half(x, half)
        return self.run_half(self.run_half(x, 0), 1)


class ResidualHalf:
    """One residual half of an :class:`EncoderBlock` as a plan unit (``granularity="half"``).

    Not a module of its own, so the state_dict keeps torchvision's names; it runs and counts
    the half's modules and carries the half's ``branch_scale``.
    """

    def __init__(self, block: EncoderBlock, half: int) -> None:
        self.block = block
        self.half = half
        self.shape = block.shape

    @property
    def branch_scale(self) -> float:
        return self.block.half_scales[self.half]

    @branch_scale.setter
    def branch_scale(self, value: float) -> None:
        self.block.half_scales[self.half] = float(value)

    def modules(self) -> list[nn.Module]:
        return self.block.half_modules(self.half)

    def parameters(self) -> Iterator[nn.Parameter]:
        for m in self.modules():
            yield from m.parameters()

    def __call__(self, x: Tensor) -> Tensor:
        return self.block(x, half=self.half)

    def compile(self, *args: Any, **kwargs: Any) -> None:
        """Compile the block the half belongs to (both halves run through its ``forward``)."""
        self.block.compile(*args, **kwargs)


class _Encoder(nn.Module):
    def __init__(self, seq_length: int, spec: ViTSpec, dropout: float) -> None:
        super().__init__()
        self.pos_embedding = nn.Parameter(torch.empty(1, seq_length, spec.dim).normal_(std=0.02))
        self.dropout = nn.Dropout(dropout)
        self.layers = nn.Sequential(OrderedDict(
            (f"encoder_layer_{i}", EncoderBlock(spec.heads, spec.dim, spec.mlp_dim, dropout)) for i in range(spec.layers)))
        self.ln = _LayerNorm(spec.dim)


class VisionTransformer(ResidualNet):
    """A ViT whose forward accepts a plan of which blocks (or halves) run, in any order."""

    family = "vit"

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        if config.arch not in VIT_SPECS:
            raise ValueError(f"unknown vision transformer {config.arch!r}; choose one of {', '.join(VIT_SPECS)}")
        if config.granularity not in GRANULARITIES:
            raise ValueError(f"unknown granularity {config.granularity!r}; choose one of {', '.join(GRANULARITIES)}")
        spec = VIT_SPECS[config.arch]
        if config.image_size < spec.patch:
            raise ValueError(f"{config.arch} cuts {spec.patch} px patches; images of {config.image_size} px are smaller")
        self.config = config
        self.spec = spec
        self.grid = config.image_size // spec.patch
        self.conv_proj = nn.Conv2d(config.in_channels, spec.dim, kernel_size=spec.patch, stride=spec.patch)
        self.class_token: nn.Parameter | None = None
        if spec.pool == "token":
            self.class_token = nn.Parameter(torch.zeros(1, 1, spec.dim))
        self.encoder = _Encoder(self.grid ** 2 + (self.class_token is not None), spec, 0.0)
        head = nn.Linear(spec.dim, config.num_classes)
        self.heads = nn.Sequential(OrderedDict(head=head))
        fan_in = config.in_channels * spec.patch * spec.patch
        nn.init.trunc_normal_(self.conv_proj.weight, std=math.sqrt(1 / fan_in))
        nn.init.zeros_(self.conv_proj.bias)  # type: ignore[arg-type]
        nn.init.zeros_(head.weight)  # torchvision's: a fresh ViT predicts uniformly
        nn.init.zeros_(head.bias)

        self.encoder_blocks: list[EncoderBlock] = list(self.encoder.layers)  # type: ignore[arg-type]
        half = config.granularity == "half"
        self.blocks: list[Any] = ([ResidualHalf(b, h) for b in self.encoder_blocks for h in (0, 1)] if half
                                  else list(self.encoder_blocks))
        n = len(self.blocks)
        self.layout = NetLayout(
            stages=(tuple(range(n)),),
            shapes=(BlockShape(spec.dim, spec.dim, 1),) * n,
            order="free",
            branches_per_unit=1 if half else 2,
            kinds=("attention", "mlp") * (n // 2) if half else ("transformer",) * n,
            group_name="encoder",
            unit_name="half" if half else "block",
        )

    # ------------------------------------------------------------------ ops
    def forward_stem(self, x: Tensor) -> Tensor:
        n = x.shape[0]
        x = self.conv_proj(x)
        gh, gw = x.shape[-2], x.shape[-1]
        x = x.reshape(n, self.spec.dim, gh * gw).permute(0, 2, 1)
        if self.class_token is not None:
            x = torch.cat([self.class_token.expand(n, -1, -1), x], dim=1)
        pos: Tensor = self.encoder.pos_embedding
        if (gh, gw) != (self.grid, self.grid):
            pos = self._resample_positions(gh, gw)
        return self.encoder.dropout(x + pos)

    def _resample_positions(self, gh: int, gw: int) -> Tensor:
        """Position embeddings for a ``gh x gw`` patch grid (smaller ST++ inputs): bicubic, as timm."""
        pos = self.encoder.pos_embedding
        k = 1 if self.class_token is not None else 0
        grid = pos[:, k:].reshape(1, self.grid, self.grid, -1).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=(gh, gw), mode="bicubic", align_corners=False)
        return torch.cat([pos[:, :k], grid.permute(0, 2, 3, 1).reshape(1, gh * gw, -1)], dim=1)

    def forward_head(self, x: Tensor) -> Tensor:
        x = self.encoder.ln(x)
        return self.heads(x[:, 0] if self.class_token is not None else x.mean(dim=1))

    def _plan_ops(self, plan: SubnetPlan) -> tuple[Op, ...]:
        return tuple(("block", b) for b in plan.blocks)

    def run_op(self, op: Op, x: Tensor) -> Tensor:
        if op[0] != "block":
            raise ValueError(f"unknown op {op!r}")
        return self.blocks[op[1]](x)

    def op_modules(self, op: Op) -> list[nn.Module]:
        if op[0] != "block":
            raise ValueError(f"unknown op {op!r}")
        unit = self.blocks[op[1]]
        return unit.modules() if isinstance(unit, ResidualHalf) else [unit]

    def stem_parameters(self) -> list[nn.Parameter]:
        token = [] if self.class_token is None else [self.class_token]
        return [*self.conv_proj.parameters(), *token, self.encoder.pos_embedding]

    def head_parameters(self) -> list[nn.Parameter]:
        return [*self.encoder.ln.parameters(), *self.heads.parameters()]

    def total_stride(self) -> int:
        return self.spec.patch

    def stem_summary(self) -> StemSummary:
        p, d = self.spec.patch, self.spec.dim
        token = " + class token" if self.class_token is not None else ""
        return StemSummary(d, p, p, f"{p}x{p} patches -> {self.grid * self.grid} tokens of width {d}{token}")

    def group_sizes(self) -> list[int]:
        return [self.grid]

    def architecture_key(self) -> tuple[Any, ...]:
        s = self.spec
        return (s.patch, s.heads, s.dim, s.mlp_dim, s.pool, self.config.granularity)


def _recognise(state: StateDict, image_size: int | None, arch: str | None) -> ModelConfig | None:
    if "conv_proj.weight" not in state or "encoder.pos_embedding" not in state:
        return None
    pool = "token" if "class_token" in state else "mean"
    proj = state["conv_proj.weight"]
    dim, in_ch, patch = int(proj.shape[0]), int(proj.shape[1]), int(proj.shape[-1])
    layers = len({k.split(".")[2] for k in state if k.startswith("encoder.layers.encoder_layer_")})
    mlp_key = "encoder.layers.encoder_layer_0.mlp.0.weight"
    mlp_dim = int(state[mlp_key].shape[0]) if mlp_key in state else 0
    if "heads.head.weight" not in state:
        raise UnknownLayout("unsupported vision transformer: no heads.head (a pre-logits head is not supported)")
    num_classes = int(state["heads.head.weight"].shape[0])
    grid = math.isqrt(int(state["encoder.pos_embedding"].shape[1]) - (pool == "token"))
    for name in sorted(VIT_SPECS, key=lambda n: n != arch):  # the user's hint first (heads are not in weights)
        s = VIT_SPECS[name]
        if (s.patch, s.layers, s.dim, s.mlp_dim, s.pool) == (patch, layers, dim, mlp_dim, pool):
            return ModelConfig(name, num_classes, in_ch, image_size or grid * patch)
    raise UnknownLayout(f"unrecognised vision transformer: {layers} blocks of width {dim} (MLP {mlp_dim}), "
                        f"{patch} px patches; the number of attention heads cannot be read from weights, so "
                        "only registered sizes are recognised")


def _describe(arch: str) -> str:
    s = VIT_SPECS[arch]
    head = "class token" if s.pool == "token" else "mean of the tokens"
    return f"vision transformer: {s.layers} blocks of width {s.dim}, {s.heads} heads, {s.patch} px patches, head on the {head}"


def _build(config: ModelConfig) -> ResidualNet:
    return VisionTransformer(config)


FAMILY = Family(
    name="vit",
    title="Vision transformer",
    archs=tuple(VIT_SPECS),
    build=_build,
    recognise=_recognise,
    describe=_describe,
    granularities=GRANULARITIES,
)
