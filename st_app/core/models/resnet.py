"""ResidualNet: stem -> stages of residual blocks -> head, runnable under any SubnetPlan."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

import torch
from torch import Tensor, nn

from ..plan import NetLayout, SubnetPlan
from .blocks import BasicBlock, Bottleneck, ResidualBlock, init_weights


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a model before loading its weights."""

    arch: str
    num_classes: int = 10
    in_channels: int = 3
    image_size: int = 32

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        try:
            return cls(
                arch=str(d["arch"]),
                num_classes=int(d["num_classes"]),
                in_channels=int(d["in_channels"]),
                image_size=int(d["image_size"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"model description is incomplete or malformed: {exc}") from None


# name -> (family, block type, blocks per stage)
CIFAR_DEPTHS = {"resnet20": 3, "resnet32": 5, "resnet44": 7, "resnet56": 9, "resnet110": 18}
IMAGENET_SPECS: dict[str, tuple[type[ResidualBlock], list[int]]] = {
    "resnet18": (BasicBlock, [2, 2, 2, 2]),
    "resnet34": (BasicBlock, [3, 4, 6, 3]),
    "resnet50": (Bottleneck, [3, 4, 6, 3]),
    "resnet101": (Bottleneck, [3, 4, 23, 3]),
    "resnet152": (Bottleneck, [3, 8, 36, 3]),
}
ARCHITECTURES = tuple(CIFAR_DEPTHS) + tuple(IMAGENET_SPECS)


class ResidualNet(nn.Module):
    """A ResNet whose forward accepts a plan of which blocks run, and in which order.

    Module names match torchvision's ResNet (conv1, bn1, layer1..., fc), so its
    ``state_dict`` is interchangeable with torchvision's for the ImageNet family.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        arch = config.arch
        if arch in CIFAR_DEPTHS:
            block: type[ResidualBlock] = BasicBlock
            depths = [CIFAR_DEPTHS[arch]] * 3
            widths, strides = [16, 32, 64], [1, 2, 2]
            stem_width = 16
            self.conv1: nn.Conv2d = nn.Conv2d(config.in_channels, stem_width, 3, 1, 1, bias=False)
            self.maxpool: nn.Module = nn.Identity()
        elif arch in IMAGENET_SPECS:
            block, depths = IMAGENET_SPECS[arch]
            widths, strides = [64, 128, 256, 512], [1, 2, 2, 2]
            stem_width = 64
            self.conv1 = nn.Conv2d(config.in_channels, stem_width, 7, 2, 3, bias=False)
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        else:
            raise ValueError(f"unknown model {arch!r}; choose one of {', '.join(ARCHITECTURES)}")
        self.bn1 = nn.BatchNorm2d(stem_width)
        self.relu = nn.ReLU(inplace=True)
        inplanes = stem_width
        self.num_stages = len(depths)
        for s, (n, width, stride) in enumerate(zip(depths, widths, strides)):
            layer = []
            for i in range(n):
                layer.append(block(inplanes, width, stride if i == 0 else 1))
                inplanes = width * block.expansion
            self.add_module(f"layer{s + 1}", nn.Sequential(*layer))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(inplanes, config.num_classes)
        init_weights(self)

        self.stages: list[list[ResidualBlock]] = [
            list(getattr(self, f"layer{s + 1}")) for s in range(self.num_stages)
        ]
        self.blocks: list[ResidualBlock] = [b for stage in self.stages for b in stage]
        ids = iter(range(len(self.blocks)))
        self.layout = NetLayout(
            stages=tuple(tuple(next(ids) for _ in stage) for stage in self.stages),
            shapes=tuple(b.shape for b in self.blocks),
        )

    # ------------------------------------------------------------------ forward
    def forward_stem(self, x: Tensor) -> Tensor:
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))

    def forward_stage(self, x: Tensor, s: int, blocks: tuple[int, ...] | None = None) -> Tensor:
        """Run stage ``s``; ``blocks`` lists the global ids to run (None: all, in order)."""
        if blocks is None:
            for block in self.stages[s]:
                x = block(x)
            return x
        entry = self.layout.stages[s][0]
        if entry not in blocks and self.blocks[entry].downsample is not None:
            x = self.blocks[entry](x, run_branch=False)
        for b in blocks:
            x = self.blocks[b](x)
        return x

    def forward_features(self, x: Tensor, plan: SubnetPlan | None = None) -> Tensor:
        if plan is not None and plan.layout != self.layout:
            raise ValueError(
                f"plan {plan} was made for another network layout (depths {plan.layout.depths}, "
                f"this network has {self.layout.depths})"
            )
        x = self.forward_stem(x)
        for s in range(self.num_stages):
            x = self.forward_stage(x, s, None if plan is None else plan.stages[s])
        return x

    def forward_with_taps(self, x: Tensor) -> tuple[Tensor, list[list[Tensor]]]:
        """Full forward that also returns every stage's intermediate activations.

        ``taps[s][d]`` is the activation after the first ``d`` blocks of stage ``s`` (``d=0``:
        the stage input). Ordered sub-nets share these prefixes with the main net.
        """
        x = self.forward_stem(x)
        taps: list[list[Tensor]] = []
        for stage in self.stages:
            stage_taps = [x]
            for block in stage:
                x = block(x)
                stage_taps.append(x)
            taps.append(stage_taps)
        return self.forward_head(x), taps

    def forward_from_taps(self, taps: list[list[Tensor]], plan: SubnetPlan) -> Tensor:
        """Run ``plan`` reusing the main net's activations for the prefix they share.

        Exact (same values, same gradients) whenever the taps come from the same weights,
        inputs and BN mode, because a plan's shared prefix computes the same function.
        """
        full = self.layout.stages
        s = 0
        while s < self.num_stages and plan.stages[s] == full[s]:
            s += 1
        if s == self.num_stages:
            return self.forward_head(taps[-1][-1])
        common = 0
        for a, b in zip(plan.stages[s], full[s]):
            if a != b:
                break
            common += 1
        if common == 0:
            x = self.forward_stage(taps[s][0], s, plan.stages[s])
        else:
            x = taps[s][common]
            for b in plan.stages[s][common:]:
                x = self.blocks[b](x)
        for t in range(s + 1, self.num_stages):
            x = self.forward_stage(x, t, plan.stages[t])
        return self.forward_head(x)

    def forward_head(self, x: Tensor) -> Tensor:
        return self.fc(torch.flatten(self.avgpool(x), 1))

    def forward(self, x: Tensor, plan: SubnetPlan | None = None) -> Tensor:
        return self.forward_head(self.forward_features(x, plan))

    # ----------------------------------------------------------- sub-net sizes
    def plan_parameters(self, plan: SubnetPlan | None = None) -> int:
        """Parameters a sub-net actually uses (stem, head, active branches, needed projections)."""
        plan = plan or self.layout.full_plan()
        count = sum(p.numel() for m in (self.conv1, self.bn1, self.fc) for p in m.parameters())
        for s, stage in enumerate(plan.stages):
            entry = self.layout.stages[s][0]
            projection = self.blocks[entry].downsample
            if entry not in stage and projection is not None:
                count += sum(p.numel() for p in projection.parameters())
            for b in stage:
                count += sum(p.numel() for p in self.blocks[b].parameters())
        return count

    def plan_flops(self, plan: SubnetPlan | None = None) -> int:
        """Multiply-accumulates of one image through the sub-net (convolutions and the head)."""
        plan = plan or self.layout.full_plan()
        return _plan_flops(self, str(plan))


@lru_cache(maxsize=4096)
def _plan_flops_cached(arch: str, num_classes: int, in_channels: int, image_size: int, plan_text: str) -> int:
    model = ResidualNet(ModelConfig(arch, num_classes, in_channels, image_size))
    plan = SubnetPlan.parse(plan_text, model.layout)
    total = 0

    def hook(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1]
            total += output[0].numel() * (module.in_channels // module.groups) * k
        elif isinstance(module, nn.Linear):
            total += module.in_features * module.out_features

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    model.eval()
    with torch.no_grad():
        x = torch.zeros(1, in_channels, image_size, image_size)
        model(x, plan)
    for h in handles:
        h.remove()
    return total


def _plan_flops(model: ResidualNet, plan_text: str) -> int:
    c = model.config
    return _plan_flops_cached(c.arch, c.num_classes, c.in_channels, c.image_size, plan_text)


def build_model(
    arch: str, num_classes: int = 10, in_channels: int = 3, image_size: int = 32
) -> ResidualNet:
    """Build a residual net adapted to the data set's channels, classes and image size."""
    return ResidualNet(ModelConfig(arch, num_classes, in_channels, image_size))
