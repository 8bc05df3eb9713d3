"""Residual network families expressed as one plan-aware ResidualNet."""

from .blocks import BasicBlock, Bottleneck, ResidualBlock
from .resnet import ARCHITECTURES, CIFAR_DEPTHS, IMAGENET_SPECS, ModelConfig, ResidualNet, build_model

__all__ = [
    "ARCHITECTURES",
    "CIFAR_DEPTHS",
    "IMAGENET_SPECS",
    "BasicBlock",
    "Bottleneck",
    "ModelConfig",
    "ResidualBlock",
    "ResidualNet",
    "build_model",
]
