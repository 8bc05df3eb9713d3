"""Wide ResNets for small images (Zagoruyko & Komodakis 2016): WRN-d-k, CIFAR style.

Three stages of ``(d - 4) / 6`` pre-activation blocks of widths 16k, 32k, 64k after a 3x3
stem of 16 channels; a final BN-ReLU (an op of every plan), global pooling and a linear
classifier. Plans follow the ResNet rules (torchvision's ``wide_resnet50_2`` is a ResNet
by name, in ``resnet.py``).
"""

from __future__ import annotations

import re
from typing import Any

import torch
from torch import Tensor, nn

from .base import ModelConfig, ResidualNet, StemSummary
from .blocks import PreActBlock, init_weights
from .registry import Family, StateDict, UnknownLayout
from .resnet import StagedNet, stage_depths

__all__ = ["FAMILY", "WideResNet", "parse_wrn"]

WRN_ARCHS = ("wrn-16-4", "wrn-16-8", "wrn-28-10", "wrn-40-4")
_NAME = re.compile(r"^wrn-(\d+)-(\d+)$")


def parse_wrn(arch: str) -> tuple[int, int] | None:
    """``wrn-28-10`` -> (blocks per stage 4, widen factor 10); None when not a valid WRN name."""
    m = _NAME.match(arch)
    if not m:
        return None
    depth, k = int(m.group(1)), int(m.group(2))
    if depth < 10 or (depth - 4) % 6 or k < 1:
        return None
    return (depth - 4) // 6, k


class _FinalNorm(nn.Sequential):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=False)


class WideResNet(StagedNet):
    """WRN-d-k whose forward accepts a plan (the ResNet rules; the final BN-ReLU always runs)."""

    family = "wrn"

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        parsed = parse_wrn(config.arch)
        if parsed is None:
            raise ValueError(f"unknown Wide ResNet {config.arch!r}: use wrn-<depth>-<k> with depth = 6n + 4")
        n, k = parsed
        self.config = config
        self.widen = k
        self.conv1 = nn.Conv2d(config.in_channels, 16, 3, 1, 1, bias=False)
        inplanes = 16
        for s, (width, stride) in enumerate(zip((16 * k, 32 * k, 64 * k), (1, 2, 2))):
            layer = []
            for i in range(n):
                layer.append(PreActBlock(inplanes, width, stride if i == 0 else 1))
                inplanes = width
            self.add_module(f"layer{s + 1}", nn.Sequential(*layer))
        self.final_norm = _FinalNorm(inplanes)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(inplanes, config.num_classes)
        init_weights(self)
        nn.init.zeros_(self.fc.bias)
        self.stages = [list(getattr(self, f"layer{s + 1}")) for s in range(3)]
        self._finish("preact")

    def forward_stem(self, x: Tensor) -> Tensor:
        return self.conv1(x)

    def forward_head(self, x: Tensor) -> Tensor:
        return self.fc(torch.flatten(self.avgpool(x), 1))

    def stem_parameters(self) -> list[nn.Parameter]:
        return list(self.conv1.parameters())

    def head_parameters(self) -> list[nn.Parameter]:
        return list(self.fc.parameters())

    def total_stride(self) -> int:
        return 4

    def stem_summary(self) -> StemSummary:
        return StemSummary(16, 3, 1, "conv 3x3, 16")

    def architecture_key(self) -> tuple[Any, ...]:
        return ("wrn", self.widen)


def _recognise(state: StateDict, image_size: int | None, arch: str | None) -> ModelConfig | None:
    if "conv1.weight" not in state or "fc.weight" not in state or "final_norm.bn.weight" not in state:
        return None
    per_stage = stage_depths(state)
    stem = state["conv1.weight"]
    width = int(state["layer1.0.conv1.weight"].shape[0]) if "layer1.0.conv1.weight" in state else 0
    if len(per_stage) == 3 and len(set(per_stage)) == 1 and width % 16 == 0 and width:
        name = f"wrn-{6 * per_stage[0] + 4}-{width // 16}"
        if parse_wrn(name) is not None:
            return ModelConfig(name, int(state["fc.weight"].shape[0]), int(stem.shape[1]), image_size or 32)
    raise UnknownLayout(f"unrecognised Wide ResNet layout: stages {per_stage}, first width {width}")


def _describe(arch: str) -> str:
    parsed = parse_wrn(arch)
    assert parsed is not None
    n, k = parsed
    return f"Wide ResNet {arch.upper()}: 3 stages of {n} pre-activation blocks, widths {16 * k}/{32 * k}/{64 * k}"


def _build(config: ModelConfig) -> ResidualNet:
    return WideResNet(config)


FAMILY = Family(
    name="wrn",
    title="Wide ResNet (CIFAR)",
    archs=WRN_ARCHS,
    build=_build,
    recognise=_recognise,
    describe=_describe,
    accepts=lambda arch: parse_wrn(arch) is not None,
)
