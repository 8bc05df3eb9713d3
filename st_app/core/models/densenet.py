"""DenseNets (Huang et al. 2017) as plan-aware networks: torchvision's 121/161/169/201 (same
module names, so their state_dicts load unchanged), DenseNet-264, and the CIFAR DenseNet-BC
(3x3 stem, three dense blocks, growth 12) for small images.

A plan unit is one dense layer; a group is one dense block. A sub-net keeps, per dense block,
some of its layers, always in network order: the features of a dropped layer are zeros, so
every later layer, the following transition and the final norm read zeros in that layer's
channels (the definition behind the paper's "DenseNet-121 inside DenseNet-169": the first
6/12/24/16 layers of 169's 6/12/32/32). Layers cannot be permuted: each reads the channels
of all earlier layers at fixed positions.
"""

from __future__ import annotations

import math
import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..plan import BlockShape, NetLayout, SubnetPlan
from .base import ModelConfig, Op, ResidualNet, StemSummary
from .registry import Family, StateDict, UnknownLayout

__all__ = ["DenseLayer", "DenseNet", "DenseSpec", "FAMILY", "parse_densenet"]


@dataclass(frozen=True)
class DenseSpec:
    depths: tuple[int, ...]
    growth: int = 32
    init_features: int = 64
    bn_size: int = 4
    cifar: bool = False  # 3x3 stem without norm/pool (small images), else torchvision's 7x7 stem


IMAGENET_DENSENETS = {
    "densenet121": DenseSpec((6, 12, 24, 16)),
    "densenet161": DenseSpec((6, 12, 36, 24), 48, 96),
    "densenet169": DenseSpec((6, 12, 32, 32)),
    "densenet201": DenseSpec((6, 12, 48, 32)),
    "densenet264": DenseSpec((6, 12, 64, 48)),
}
BC_ARCHS = ("densenet-bc-22", "densenet-bc-40", "densenet-bc-64", "densenet-bc-100")
_BC = re.compile(r"^densenet-bc-(\d+)$")


def parse_densenet(arch: str) -> DenseSpec | None:
    """The spec of a DenseNet name; ``densenet-bc-<depth>`` has (depth - 4) / 6 layers per block."""
    if arch in IMAGENET_DENSENETS:
        return IMAGENET_DENSENETS[arch]
    m = _BC.match(arch)
    if m:
        depth = int(m.group(1))
        if depth >= 10 and (depth - 4) % 6 == 0:
            n = (depth - 4) // 6
            return DenseSpec((n, n, n), growth=12, init_features=24, cifar=True)
    return None


class DenseLayer(nn.Module):
    """BN-ReLU-conv1x1 (bottleneck) -> BN-ReLU-conv3x3, as torchvision's ``_DenseLayer``.

    ``forward`` takes the concatenation of all earlier features and returns the ``growth``
    new channels (scaled by ``branch_scale`` at evaluation, for stochastic depth).
    """

    def __init__(self, in_features: int, growth: int, bn_size: int) -> None:
        super().__init__()
        self.norm1 = nn.BatchNorm2d(in_features)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_features, bn_size * growth, kernel_size=1, stride=1, bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(bn_size * growth, growth, kernel_size=3, stride=1, padding=1, bias=False)
        self.shape = BlockShape(in_features, in_features + growth, 1)
        self.growth = growth
        self.branch_scale: float = 1.0

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv2(self.relu2(self.norm2(self.conv1(self.relu1(self.norm1(x))))))
        if self.branch_scale != 1.0 and not self.training:
            out = out * self.branch_scale
        return out


class _DenseBlock(nn.ModuleDict):
    def __init__(self, n: int, in_features: int, growth: int, bn_size: int) -> None:
        super().__init__()
        for i in range(n):
            self.add_module(f"denselayer{i + 1}", DenseLayer(in_features + i * growth, growth, bn_size))


class _Transition(nn.Sequential):
    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(in_features)
        self.relu = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(in_features, out_features, kernel_size=1, stride=1, bias=False)
        self.pool = nn.AvgPool2d(kernel_size=2, stride=2)


class DenseNet(ResidualNet):
    """A DenseNet whose forward accepts a plan of which dense layers run (the rest give zeros)."""

    family = "densenet"

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        spec = parse_densenet(config.arch)
        if spec is None:
            raise ValueError(f"unknown DenseNet {config.arch!r}; choose one of {', '.join(DENSENET_ARCHS)} "
                             "or densenet-bc-<depth> with depth = 6n + 4")
        self.config = config
        self.spec = spec
        if spec.cifar:
            stem: list[tuple[str, nn.Module]] = [
                ("conv0", nn.Conv2d(config.in_channels, spec.init_features, 3, 1, 1, bias=False))]
        else:
            stem = [("conv0", nn.Conv2d(config.in_channels, spec.init_features, 7, 2, 3, bias=False)),
                    ("norm0", nn.BatchNorm2d(spec.init_features)),
                    ("relu0", nn.ReLU(inplace=True)),
                    ("pool0", nn.MaxPool2d(kernel_size=3, stride=2, padding=1))]
        self.features = nn.Sequential(OrderedDict(stem))
        self.stem_names = [name for name, _ in stem]
        n_features = spec.init_features
        self.dense_blocks: list[_DenseBlock] = []
        self.transitions: list[_Transition] = []
        for i, n in enumerate(spec.depths):
            block = _DenseBlock(n, n_features, spec.growth, spec.bn_size)
            self.features.add_module(f"denseblock{i + 1}", block)
            self.dense_blocks.append(block)
            n_features += n * spec.growth
            if i != len(spec.depths) - 1:
                trans = _Transition(n_features, n_features // 2)
                self.features.add_module(f"transition{i + 1}", trans)
                self.transitions.append(trans)
                n_features //= 2
        self.features.add_module("norm5", nn.BatchNorm2d(n_features))
        self.classifier = nn.Linear(n_features, config.num_classes)
        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.Linear):
                nn.init.constant_(m.bias, 0)

        self.blocks: list[DenseLayer] = [layer for block in self.dense_blocks for layer in block.values()]  # type: ignore[misc]
        ids = iter(range(len(self.blocks)))
        self.layout = NetLayout(
            stages=tuple(tuple(next(ids) for _ in block) for block in self.dense_blocks),
            shapes=tuple(layer.shape for layer in self.blocks),
            order="fixed",
            paths="dense",
            kinds=("dense",) * len(self.blocks),
            group_name="dense block",
            unit_name="layer",
            order_reason="each layer reads the channels of all earlier layers at fixed positions",
        )

    # ------------------------------------------------------------------ ops
    def forward_stem(self, x: Tensor) -> Tensor:
        for name in self.stem_names:
            x = self.features.get_submodule(name)(x)
        return x

    def forward_head(self, x: Tensor) -> Tensor:
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(x, (1, 1)), 1))

    def _plan_ops(self, plan: SubnetPlan) -> tuple[Op, ...]:
        ops: list[Op] = []
        for g, (kept, group) in enumerate(zip(plan.stages, self.layout.stages)):
            ops.extend(("block", b) if b in kept else ("zeros", b) for b in group)
            if g < len(self.transitions):
                ops.append(("transition", g))
        ops.append(("norm", 0))
        return tuple(ops)

    def run_op(self, op: Op, x: Tensor) -> Tensor:
        kind, i = op
        if kind == "block":
            return torch.cat([x, self.blocks[i](x)], 1)
        if kind == "zeros":
            n, _, h, w = x.shape
            return torch.cat([x, x.new_zeros(n, self.blocks[i].growth, h, w)], 1)
        if kind == "transition":
            return self.transitions[i](x)
        if kind == "norm":
            return F.relu(self._norm5()(x))
        raise ValueError(f"unknown op {op!r}")

    def op_modules(self, op: Op) -> list[nn.Module]:
        kind, i = op
        if kind == "block":
            return [self.blocks[i]]
        if kind == "zeros":
            return []
        if kind == "transition":
            return [self.transitions[i]]
        if kind == "norm":
            return [self._norm5()]
        raise ValueError(f"unknown op {op!r}")

    def _norm5(self) -> nn.Module:
        return self.features.get_submodule("norm5")

    def stem_parameters(self) -> list[nn.Parameter]:
        return [p for name in self.stem_names for p in self.features.get_submodule(name).parameters()]

    def head_parameters(self) -> list[nn.Parameter]:
        return list(self.classifier.parameters())

    def total_stride(self) -> int:
        return (1 if self.spec.cifar else 4) * 2 ** len(self.transitions)

    def stem_summary(self) -> StemSummary:
        c = self.spec.init_features
        if self.spec.cifar:
            return StemSummary(c, 3, 1, f"conv 3x3, {c}")
        return StemSummary(c, 7, 4, f"conv 7x7, {c}, stride 2, max-pool")

    def group_sizes(self) -> list[int]:
        """Each dense block's side; the transitions after blocks 1..n-1 halve it (average pool 2)."""
        size = self.config.image_size if self.spec.cifar else math.ceil(math.ceil(self.config.image_size / 2) / 2)
        out = []
        for g in range(len(self.dense_blocks)):
            out.append(max(1, size))
            if g < len(self.transitions):
                size //= 2
        return out

    def architecture_key(self) -> tuple[Any, ...]:
        s = self.spec
        return (s.cifar, s.growth, s.init_features, s.bn_size)


DENSENET_ARCHS = tuple(IMAGENET_DENSENETS) + BC_ARCHS

# torchvision's published weights spell the layer modules "norm.1", "conv.2", ...
_LEGACY = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$")


def _adapt(state: dict[str, Tensor]) -> dict[str, Tensor]:
    out = {}
    for key, value in state.items():
        m = _LEGACY.match(key)
        out[m.group(1) + m.group(2) if m else key] = value
    return out


def _recognise(state: StateDict, image_size: int | None, arch: str | None) -> ModelConfig | None:
    if "features.conv0.weight" not in state or "classifier.weight" not in state:
        return None
    conv0 = state["features.conv0.weight"]
    in_ch, kernel, init = int(conv0.shape[1]), int(conv0.shape[-1]), int(conv0.shape[0])
    num_classes = int(state["classifier.weight"].shape[0])
    counts: dict[int, int] = {}
    for key in state:
        m = re.match(r"features\.denseblock(\d+)\.denselayer(\d+)\.", key)
        if m:
            counts[int(m.group(1))] = max(counts.get(int(m.group(1)), 0), int(m.group(2)))
    depths = tuple(counts[g] for g in sorted(counts))
    growth_key = "features.denseblock1.denselayer1.conv2.weight"
    growth = int(state[growth_key].shape[0]) if growth_key in state else 0
    candidates = sorted(DENSENET_ARCHS, key=lambda n: n != arch)  # the user's hint first
    if kernel == 3 and len(depths) == 3 and len(set(depths)) == 1:
        candidates.append(f"densenet-bc-{6 * depths[0] + 4}")
    for name in candidates:
        spec = parse_densenet(name)
        if spec is not None and (spec.depths, spec.growth, spec.init_features, spec.cifar) == (
                depths, growth, init, kernel == 3):
            return ModelConfig(name, num_classes, in_ch, image_size or (32 if spec.cifar else 224))
    raise UnknownLayout(f"unrecognised DenseNet layout: dense blocks {list(depths)}, growth {growth}, "
                        f"stem kernel {kernel}")


def _describe(arch: str) -> str:
    spec = parse_densenet(arch)
    assert spec is not None
    where = "CIFAR DenseNet-BC (small images)" if spec.cifar else f"DenseNet {arch.removeprefix('densenet')}"
    return f"{where}: dense blocks of {list(spec.depths)} layers, growth {spec.growth}"


def _build(config: ModelConfig) -> ResidualNet:
    return DenseNet(config)


FAMILY = Family(
    name="densenet",
    title="DenseNet",
    archs=DENSENET_ARCHS,
    build=_build,
    recognise=_recognise,
    describe=_describe,
    accepts=lambda arch: parse_densenet(arch) is not None,
    adapt_state=_adapt,
)
