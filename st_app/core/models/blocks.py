"""Residual blocks written as ``post(shortcut(x) + branch(x))``.

Attribute names follow torchvision (conv1, bn1, ..., downsample) so that torchvision's
ResNet, ResNeXt and Wide ResNet weights load unchanged; the branch/shortcut split is what
lets a plan drop a branch.
"""

from __future__ import annotations

from torch import Tensor, nn

from ..plan import BlockShape


def conv3x3(in_planes: int, out_planes: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, groups=groups, bias=False)


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

    def projection_modules(self) -> list[nn.Module]:
        """What a dropped shape-changing block still runs: its projection shortcut."""
        return [] if self.downsample is None else [self.downsample]

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

    def __init__(self, inplanes: int, planes: int, stride: int = 1, groups: int = 1, base_width: int = 64) -> None:
        super().__init__(inplanes, planes * self.expansion, stride)
        if groups != 1 or base_width != 64:
            raise ValueError("BasicBlock supports only groups=1 and base_width=64")
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)

    def branch(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        return self.bn2(self.conv2(out))


class Bottleneck(ResidualBlock):
    """1x1 -> 3x3 (stride here, as torchvision's ResNet v1.5; grouped for ResNeXt) -> 1x1 expansion 4.

    The inner width is ``int(planes * base_width / 64) * groups`` as in torchvision, so
    ResNeXt (``groups=32, base_width=4``) and Wide ResNet-50-2 (``base_width=128``) share it.
    """

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, groups: int = 1, base_width: int = 64) -> None:
        super().__init__(inplanes, planes * self.expansion, stride)
        width = int(planes * (base_width / 64.0)) * groups
        self.conv1 = conv1x1(inplanes, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, stride, groups)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)

    def branch(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.bn3(self.conv3(out))


class PreActBlock(ResidualBlock):
    """Wide ResNet block (Zagoruyko & Komodakis): BN-ReLU-conv3x3 twice, no activation after the sum.

    A shape-changing block's 1x1 projection reads the pre-activated input ``relu(bn1(x))``, as
    in the authors' code; dropping its branch keeps that projection (and the shared ``bn1``).
    """

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        nn.Module.__init__(self)
        self.shape = BlockShape(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes)
        self.relu = nn.ReLU(inplace=False)
        self.downsample = conv1x1(inplanes, planes, stride) if self.shape.changes_shape else None
        self.branch_scale = 1.0

    def projection_modules(self) -> list[nn.Module]:
        return [] if self.downsample is None else [self.bn1, self.downsample]

    def forward(self, x: Tensor, run_branch: bool = True) -> Tensor:
        if self.downsample is None:
            if not run_branch:
                return x
            out = self.conv2(self.relu(self.bn2(self.conv1(self.relu(self.bn1(x))))))
            if self.branch_scale != 1.0 and not self.training:
                out = out * self.branch_scale
            return x + out
        pre = self.relu(self.bn1(x))
        shortcut = self.downsample(pre)
        if not run_branch:
            return shortcut
        out = self.conv2(self.relu(self.bn2(self.conv1(pre))))
        if self.branch_scale != 1.0 and not self.training:
            out = out * self.branch_scale
        return shortcut + out


def init_weights(module: nn.Module) -> None:
    """He initialisation as in torchvision's ResNet."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
