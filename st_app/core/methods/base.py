"""The interface every training scheme implements, and what several schemes share."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from torch import Tensor, nn

from ..models import ResidualNet
from ..plan import SubnetPlan

__all__ = ["Method", "total_stride"]


class Method:
    """Interface: ``step`` runs forward and backward for one batch.

    It returns detached scalar tensors (loss terms); the Trainer turns them into floats once
    per step, so a GPU is synchronised only where the numbers are needed.
    """

    name = "base"
    #: set by the Trainer for fp16 (GradScaler.scale); every backward goes through :meth:`backward`
    scale_loss: Callable[[Tensor], Tensor] | None = None

    def prepare(self, model: ResidualNet) -> None:
        """Called once before training (and after loading) to set model-level state."""

    def step(self, model: ResidualNet, images: Tensor, labels: Tensor, rng: random.Random) -> dict[str, Tensor]:
        raise NotImplementedError

    def options(self) -> dict[str, Any]:
        return {}

    def backward(self, loss: Tensor) -> None:
        """``loss.backward()``, with the loss scaled first when the run trains in fp16."""
        (loss if self.scale_loss is None else self.scale_loss(loss)).backward()

    def eval_plan(self) -> SubnetPlan | None:
        """The plan the per-epoch test accuracy should measure (None: the main net)."""
        return None

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, **self.options()}

    def default_bn_reestimate(self) -> bool:
        """Re-estimate the main net's BN statistics after every epoch when the run does not say
        (``TrainConfig.bn_reestimate=None``)? The authors' trainer always does; ST++ keeps that."""
        return False

    def begin_epoch(self, epoch: int, epochs: int) -> None:
        """Called before each epoch (0-based) of ``epochs``; for schedules such as KL ramps."""

    def training_modules(self) -> nn.Module | None:
        """Trainable parts the method adds beside the network (e.g. auxiliary heads), or None.

        The Trainer optimises their parameters with the model's and saves their state in the
        run folder (``method.safetensors``); sub-nets, export and the block graph never use them.
        """
        return None


def total_stride(model: ResidualNet) -> int:
    """How many input pixels one position of the last feature map spans (4 or 32 for ResNets, a ViT's patch)."""
    return model.total_stride()
