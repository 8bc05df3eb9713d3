"""Residual blocks written as ``post(shortcut(x) + branch(x))``.

Attribute names follow torchvision (conv1, bn1, ..., downsample) so that torchvision's
ResNet weights load unchanged; the branch/shortcut split is what lets a plan drop a branch.
"""

from __future__ import annotations

from torch import Tensor, nn

from ..plan import BlockShape


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False)


class ResidualBlock(nn.Module):
    """Base class: subclasses define ``branch``; shortcut and post are shared."""

    expansion = 1

    def __init__(self, in_planes: int, out_planes: int, stride: int) -> None:
        super().__init__()
        self.shape = BlockShape(in_planes, out_planes, stride)
        self.downsample: nn.Module | None = None
        if self.shape.changes_shape:
            self.downsample = nn.Sequential(
                conv1x1(in_planes, out_planes, stride), nn.BatchNorm2d(out_planes)
            )
        self.relu = nn.ReLU(inplace=True)
        # Stochastic depth (Huang et al.) scales a branch by its survival probability at
        # evaluation time; 1.0 for every other method.
        self.branch_scale: float = 1.0

    def branch(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def shortcut(self, x: Tensor) -> Tensor:
        return x if self.downsample is None else self.downsample(x)

    def forward(self, x: Tensor, run_branch: bool = True) -> Tensor:
        identity = self.shortcut(x)
        if not run_branch:
            # A dropped identity block vanishes; a dropped projection block keeps its shortcut.
            return x if self.downsample is None else self.relu(identity)
        out = self.branch(x)
        if self.branch_scale != 1.0 and not self.training:
            out = out * self.branch_scale
        out = out + identity
        return self.relu(out)


class BasicBlock(ResidualBlock):
    """Two 3x3 convolutions (ResNet-18/34 and the CIFAR ResNets)."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__(inplanes, planes * self.expansion, stride)
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)

    def branch(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        return self.bn2(self.conv2(out))


class Bottleneck(ResidualBlock):
    """1x1 -> 3x3 (stride here, as torchvision's ResNet v1.5) -> 1x1 expansion 4."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__(inplanes, planes * self.expansion, stride)
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)

    def branch(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.bn3(self.conv3(out))


def init_weights(module: nn.Module) -> None:
    """He initialisation as in torchvision's ResNet."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

