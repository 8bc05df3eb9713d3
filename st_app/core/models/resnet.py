"""ResNets: stem -> stages of residual blocks -> head (CIFAR ResNet-20..110, torchvision's
ResNet-18..152, ResNeXt and Wide ResNet-50/101-2 by name, with their module names).

A plan lists, per stage, the blocks whose branch runs. A dropped identity block vanishes; a
dropped shape-changing entry block keeps its projection shortcut. Blocks of identical shape
may trade places inside their stage.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ..plan import NetLayout, SubnetPlan
from .base import ModelConfig, Op, ResidualNet, StemSummary
from .blocks import BasicBlock, Bottleneck, ResidualBlock, init_weights
from .registry import Family, StateDict, UnknownLayout

__all__ = ["CIFAR_DEPTHS", "FAMILY", "IMAGENET_SPECS", "ImageNetSpec", "ResNet", "StagedNet"]


@dataclass(frozen=True)
class ImageNetSpec:
    block: type[BasicBlock] | type[Bottleneck]
    depths: tuple[int, ...]
    groups: int = 1
    width_per_group: int = 64


CIFAR_DEPTHS = {"resnet20": 3, "resnet32": 5, "resnet44": 7, "resnet56": 9, "resnet110": 18}
IMAGENET_SPECS: dict[str, ImageNetSpec] = {
    "resnet18": ImageNetSpec(BasicBlock, (2, 2, 2, 2)),
    "resnet34": ImageNetSpec(BasicBlock, (3, 4, 6, 3)),
    "resnet50": ImageNetSpec(Bottleneck, (3, 4, 6, 3)),
    "resnet101": ImageNetSpec(Bottleneck, (3, 4, 23, 3)),
    "resnet152": ImageNetSpec(Bottleneck, (3, 8, 36, 3)),
    "resnext50_32x4d": ImageNetSpec(Bottleneck, (3, 4, 6, 3), 32, 4),
    "resnext101_32x8d": ImageNetSpec(Bottleneck, (3, 4, 23, 3), 32, 8),
    "resnext101_64x4d": ImageNetSpec(Bottleneck, (3, 4, 23, 3), 64, 4),
    "wide_resnet50_2": ImageNetSpec(Bottleneck, (3, 4, 6, 3), 1, 128),
    "wide_resnet101_2": ImageNetSpec(Bottleneck, (3, 4, 23, 3), 1, 128),
}


class StagedNet(ResidualNet):
    """Stages of residual blocks whose first block may change shape (ResNets, Wide ResNets).

    Subclasses build ``self.stages`` (lists of blocks with ``shape``, ``downsample`` and
    ``projection_modules()``) and call :meth:`_finish`.
    """

    family = "resnet"
    stages: list[list[ResidualBlock]]

    def _final_norm(self) -> nn.Module | None:
        """A norm after the last stage (pre-activation nets), registered as ``final_norm``."""
        return self._modules.get("final_norm")

    def _finish(self, kind: str) -> None:
        self.num_stages = len(self.stages)
        self.blocks: list[ResidualBlock] = [b for stage in self.stages for b in stage]
        ids = iter(range(len(self.blocks)))
        self.layout = NetLayout(
            stages=tuple(tuple(next(ids) for _ in stage) for stage in self.stages),
            shapes=tuple(b.shape for b in self.blocks),
            kinds=(kind,) * len(self.blocks),
        )

    def forward_stage(self, x: Tensor, s: int, blocks: tuple[int, ...] | None = None) -> Tensor:
        """Run stage ``s``; ``blocks`` lists the global ids to run (None: all, in order)."""
        if blocks is None:
            blocks = self.layout.stages[s]
        entry = self.layout.stages[s][0]
        if entry not in blocks and self.blocks[entry].downsample is not None:
            x = self.blocks[entry](x, run_branch=False)
        for b in blocks:
            x = self.blocks[b](x)
        return x

    def group_sizes(self) -> list[int]:
        size = -(-self.config.image_size // self.stem_summary().reduction)
        out = []
        for stage in self.layout.stages:
            size = -(-size // self.layout.shapes[stage[0]].stride)
            out.append(max(1, size))
        return out

    def _plan_ops(self, plan: SubnetPlan) -> tuple[Op, ...]:
        ops: list[Op] = []
        for s, blocks in enumerate(plan.stages):
            entry = self.layout.stages[s][0]
            if entry not in blocks and self.blocks[entry].downsample is not None:
                ops.append(("proj", entry))
            ops.extend(("block", b) for b in blocks)
        if self._final_norm() is not None:
            ops.append(("norm", 0))
        return tuple(ops)

    def run_op(self, op: Op, x: Tensor) -> Tensor:
        kind, b = op
        if kind == "block":
            return self.blocks[b](x)
        if kind == "proj":
            return self.blocks[b](x, run_branch=False)
        norm = self._final_norm()
        if kind == "norm" and norm is not None:
            return norm(x)
        raise ValueError(f"unknown op {op!r}")

    def op_modules(self, op: Op) -> list[nn.Module]:
        kind, b = op
        if kind == "block":
            return [self.blocks[b]]
        if kind == "proj":
            return self.blocks[b].projection_modules()
        norm = self._final_norm()
        if kind == "norm" and norm is not None:
            return [norm]
        raise ValueError(f"unknown op {op!r}")


class ResNet(StagedNet):
    """A ResNet whose forward accepts a plan of which blocks run, and in which order.

    Module names match torchvision's ResNet (conv1, bn1, layer1..., fc), so its
    ``state_dict`` is interchangeable with torchvision's for the ImageNet family.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        arch = config.arch
        groups, width_per_group = 1, 64
        if arch in CIFAR_DEPTHS:
            block: type[BasicBlock] | type[Bottleneck] = BasicBlock
            depths: tuple[int, ...] = (CIFAR_DEPTHS[arch],) * 3
            widths, strides = [16, 32, 64], [1, 2, 2]
            stem_width = 16
            self.conv1: nn.Conv2d = nn.Conv2d(config.in_channels, stem_width, 3, 1, 1, bias=False)
            self.maxpool: nn.Module = nn.Identity()
        elif arch in IMAGENET_SPECS:
            spec = IMAGENET_SPECS[arch]
            block, depths, groups, width_per_group = spec.block, spec.depths, spec.groups, spec.width_per_group
            widths, strides = [64, 128, 256, 512], [1, 2, 2, 2]
            stem_width = 64
            self.conv1 = nn.Conv2d(config.in_channels, stem_width, 7, 2, 3, bias=False)
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        else:
            raise ValueError(f"unknown ResNet {arch!r}; choose one of {', '.join(RESNET_ARCHS)}")
        self.bn1 = nn.BatchNorm2d(stem_width)
        self.relu = nn.ReLU(inplace=True)
        inplanes = stem_width
        for s, (n, width, stride) in enumerate(zip(depths, widths, strides)):
            layer = []
            for i in range(n):
                layer.append(block(inplanes, width, stride if i == 0 else 1, groups, width_per_group))
                inplanes = width * block.expansion
            self.add_module(f"layer{s + 1}", nn.Sequential(*layer))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(inplanes, config.num_classes)
        init_weights(self)
        self._key = (block.__name__, groups, width_per_group, self.conv1.kernel_size)
        self.stages = [list(getattr(self, f"layer{s + 1}")) for s in range(len(depths))]
        self._finish("bottleneck" if block is Bottleneck else "basic")

    def forward_stem(self, x: Tensor) -> Tensor:
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))

    def forward_head(self, x: Tensor) -> Tensor:
        return self.fc(torch.flatten(self.avgpool(x), 1))

    def stem_parameters(self) -> list[nn.Parameter]:
        return [*self.conv1.parameters(), *self.bn1.parameters()]

    def head_parameters(self) -> list[nn.Parameter]:
        return list(self.fc.parameters())

    def total_stride(self) -> int:
        stride = _first(self.conv1.stride)
        if isinstance(self.maxpool, nn.MaxPool2d):
            stride *= _first(self.maxpool.stride)
        for block in self.blocks:
            stride *= int(block.shape.stride)
        return stride

    def stem_summary(self) -> StemSummary:
        pool = 2 if isinstance(self.maxpool, nn.MaxPool2d) else 1
        k, c = _first(self.conv1.kernel_size), self.conv1.out_channels
        text = f"conv {k}x{k}, {c}" + (", stride 2, max-pool" if pool > 1 else "")
        return StemSummary(c, k, _first(self.conv1.stride) * pool, text)

    def architecture_key(self) -> tuple[Any, ...]:
        return self._key


def _first(v: Any) -> int:
    return int(v[0] if isinstance(v, (tuple, list)) else v)


RESNET_ARCHS = tuple(CIFAR_DEPTHS) + tuple(IMAGENET_SPECS)


def stage_depths(state: StateDict, prefix: str = "") -> list[int]:
    """Blocks per stage from ``layer<s>.<i>.`` tensor names."""
    depths: dict[int, int] = {}
    pattern = re.compile(re.escape(prefix) + r"layer(\d+)\.(\d+)\.")
    for key in state:
        m = pattern.match(key)
        if m:
            s, i = int(m.group(1)), int(m.group(2))
            depths[s] = max(depths.get(s, 0), i + 1)
    return [depths[s] for s in sorted(depths)]


def _recognise(state: StateDict, image_size: int | None, arch: str | None) -> ModelConfig | None:
    if "conv1.weight" not in state or "fc.weight" not in state or "bn1.weight" not in state:
        return None
    conv1 = state["conv1.weight"]
    in_ch, kernel = int(conv1.shape[1]), int(conv1.shape[-1])
    num_classes = int(state["fc.weight"].shape[0])
    per_stage = stage_depths(state)
    bottleneck = any(k.endswith("conv3.weight") for k in state)
    if kernel == 3 and len(per_stage) == 3:
        for name, n in CIFAR_DEPTHS.items():
            if per_stage == [n] * 3:
                return ModelConfig(name, num_classes, in_ch, image_size or 32)
    if kernel == 7 and len(per_stage) == 4 and "layer1.0.conv2.weight" in state:
        conv2 = state["layer1.0.conv2.weight"]
        width, groups = int(conv2.shape[0]), int(conv2.shape[0]) // max(1, int(conv2.shape[1]))
        for name in sorted(IMAGENET_SPECS, key=lambda n: n != arch):  # the user's hint first
            spec = IMAGENET_SPECS[name]
            spec_width = int(64 * spec.width_per_group / 64) * spec.groups
            if (list(spec.depths) == per_stage and (spec.block is Bottleneck) == bottleneck
                    and spec.groups == groups and (not bottleneck or spec_width == width)):
                return ModelConfig(name, num_classes, in_ch, image_size or 224)
    raise UnknownLayout(f"unrecognised ResNet layout: stages {per_stage}, stem kernel {kernel}")


def _describe(arch: str) -> str:
    if arch in CIFAR_DEPTHS:
        return f"CIFAR ResNet, 3 stages of {CIFAR_DEPTHS[arch]} basic blocks (small images)"
    spec = IMAGENET_SPECS[arch]
    kind = "basic" if spec.block is BasicBlock else "bottleneck"
    extra = ""
    if spec.groups > 1:
        extra = f", {spec.groups} groups x {spec.width_per_group}"
    elif spec.width_per_group != 64:
        extra = f", {spec.width_per_group // 64}x wide"
    return f"torchvision {arch}: stages {list(spec.depths)} of {kind} blocks{extra}"


FAMILY = Family(
    name="resnet",
    title="ResNet",
    archs=RESNET_ARCHS,
    build=ResNet,
    recognise=_recognise,
    describe=_describe,
)
