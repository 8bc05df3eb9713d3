"""Model families behind one protocol (:class:`ResidualNet`): ResNets (CIFAR, torchvision's
ResNet/ResNeXt/Wide ResNet), CIFAR Wide ResNets, DenseNets and vision transformers.

Everything outside this package builds models by name (:func:`build_model`), rebuilds them
from a :class:`ModelConfig` (:func:`model_from_config`) or recognises foreign weights
(:func:`recognise_state_dict`), and then only uses the protocol and the model's layout.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from . import densenet, resnet, vit, wrn
from .base import GRANULARITIES, ModelConfig, Op, ResidualNet
from .blocks import BasicBlock, Bottleneck, ResidualBlock
from .registry import Family, UnknownLayout
from .resnet import CIFAR_DEPTHS, IMAGENET_SPECS, ResNet

__all__ = [
    "ARCHITECTURES",
    "CIFAR_DEPTHS",
    "FAMILIES",
    "GRANULARITIES",
    "IMAGENET_SPECS",
    "BasicBlock",
    "Bottleneck",
    "Family",
    "ModelConfig",
    "Op",
    "ResNet",
    "ResidualBlock",
    "ResidualNet",
    "UnknownLayout",
    "build_model",
    "describe_arch",
    "family_of",
    "model_from_config",
    "recognise_state_dict",
]

#: Every family, in the order pickers list them. Adding a family: one module, one entry here.
FAMILIES: tuple[Family, ...] = (resnet.FAMILY, wrn.FAMILY, densenet.FAMILY, vit.FAMILY)

#: The registered names (families may build more by pattern, e.g. ``wrn-22-8``).
ARCHITECTURES: tuple[str, ...] = tuple(a for f in FAMILIES for a in f.archs)


def family_of(arch: str) -> Family:
    for family in FAMILIES:
        if family.builds(arch):
            return family
    raise ValueError(f"unknown model {arch!r}; choose one of {', '.join(ARCHITECTURES)}")


def describe_arch(arch: str) -> str:
    """One line about a registered architecture (model pickers show it as a tooltip)."""
    return family_of(arch).describe(arch)


def model_from_config(config: ModelConfig, *, empty: bool = False) -> ResidualNet:
    """The model a config describes (fresh weights), whatever its family.

    ``empty=True`` allocates no weights (they live on the ``meta`` device): for loading a
    checkpoint with ``load_state_dict(..., assign=True)``, without initialising a ViT-B's
    86M parameters only to overwrite them.
    """
    family = family_of(config.arch)
    if config.granularity not in family.granularities:
        raise ValueError(f"{config.arch} offers plan units {', '.join(family.granularities)}, "
                         f"not {config.granularity!r} (the choice applies to vision transformers)")
    if empty:
        with torch.device("meta"):
            return family.build(config)
    return family.build(config)


def build_model(
    arch: str, num_classes: int = 10, in_channels: int = 3, image_size: int = 32, granularity: str = "block"
) -> ResidualNet:
    """Build a model adapted to the data set's channels, classes and image size."""
    return model_from_config(ModelConfig(arch, num_classes, in_channels, image_size, granularity))


def recognise_state_dict(
    state: Mapping[str, Tensor], image_size: int | None = None, arch: str | None = None
) -> tuple[ModelConfig, dict[str, Tensor]]:
    """Which registered model a foreign state_dict holds (and the state with current tensor names).

    Each family recognises its own module names; ``arch`` (a user's ``--model``) settles what
    weights alone cannot tell (a ViT's number of heads). Raises ``ValueError`` with one line.
    """
    problems = []
    for family in FAMILIES:
        adapted = family.adapt_state(dict(state))
        try:
            config = family.recognise(adapted, image_size, arch)
        except UnknownLayout as exc:
            problems.append(str(exc))
            continue
        if config is not None:
            return config, adapted
    if problems:
        raise ValueError(problems[0])
    raise ValueError("not a ResNet, Wide ResNet, DenseNet or vision transformer state_dict: its tensor names "
                     "match none of these families")
