"""ST and ST++: the main net teaches sampled ordered sub-nets (the paper's method)."""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass, field
from typing import Any

import torch.nn.functional as F
from torch import Tensor

from ..models import ResidualNet
from ..plan import SubnetPlan, _check_space
from .base import Method, kl_to_teacher, total_stride

__all__ = ["STPP_MIN_FEATURE_SIDE", "STPP_MIN_SCALE", "StimulativeTraining"]

# ST++'s small-input recipe, from the authors' ImageNet code: sub-nets see the batch resized to
# s x s, s uniform in [int(crop * 0.43), crop] (224 -> 96 px). ResNet-50 divides its input by
# 32, so the smallest input there still leaves a 3 x 3 map for the last stage (7 x 7 at 224).
STPP_MIN_SCALE = 0.43
STPP_MIN_FEATURE_SIDE = 3


@dataclass
class StimulativeTraining(Method):
    """ST (and ST++ with its options): the main net teaches sampled ordered sub-nets.

    The main net's logits are detached, so the KL gradient reaches the shared weights only
    through the sub-network's own forward pass. With ``share_prefix`` the sub-net reuses the
    main net's activations for the blocks they have in common (same values and gradients; the
    shared BN layers then update their running statistics once per step instead of twice);
    one backward of CE + KL replaces the two separate backward passes.

    Small inputs (ST++): each sub-net sees the batch resized to ``s x s`` with ``s`` uniform in
    ``[max(ceil(min_scale * crop), min_side), crop]``. The defaults carry the authors' ImageNet
    recipe over to other input sizes instead of copying its one number:

    - ``min_scale`` (None: :data:`STPP_MIN_SCALE` = 0.43) is the recipe's relative range;
    - ``min_side`` (None: :data:`STPP_MIN_FEATURE_SIDE` x the network's total stride) is the
      floor. Why: on 224 px crops the recipe's smallest input, 96 px, still leaves ResNet-50's
      last stage a 3 x 3 map (the authors' code also holds variants with absolute floors from
      32 to 128 px; their ST++ runs use the relative 0.43). Keeping that 3 x 3 map gives a
      floor of 12 px for the CIFAR ResNets (stride 4) and 96 px for the ImageNet ones (stride
      32, so on 224 px the recipe is unchanged). 32 px CIFAR images keep the recipe's range
      [14, 32]; 64 px images get [28, 64]; images at or below the floor, like 8 x 8 digits
      (their last map is 2 x 2 even at full size), are not down-scaled at all: the recipe's
      ceil(0.43 x 8) = 4 px inputs reach the last stage as a single pixel.

    An explicit ``min_scale`` without ``min_side`` is honoured as given (no floor), as runs saved
    before the floor existed recorded ``min_scale`` only; an explicit ``min_side`` always
    applies. After :meth:`prepare` the resolved values are what :meth:`options` records, so a
    saved description rebuilds the same schedule.
    """

    n_subnets: int = 1
    kl_minus: bool = False
    small_inputs: bool = False
    min_scale: float | None = None
    min_side: int | None = None
    space: list[list[int]] | None = None
    share_prefix: bool = True
    name: str = field(default="st")

    def __post_init__(self) -> None:
        if self.min_scale is not None and not 0 < float(self.min_scale) <= 1:
            raise ValueError(f"min_scale must be in (0, 1], got {self.min_scale}")
        if self.min_side is not None and int(self.min_side) < 1:
            raise ValueError(f"min_side must be at least 1 pixel, got {self.min_side}")
        self._resolved: tuple[float, int] | None = None

    def options(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("name")
        if self._resolved is not None:
            d["min_scale"], d["min_side"] = self._resolved
        return d

    def prepare(self, model: ResidualNet) -> None:
        self.space = _check_space(model.layout, self.space)
        self._resolve(model)

    def _resolve(self, model: ResidualNet) -> None:
        scale = STPP_MIN_SCALE if self.min_scale is None else float(self.min_scale)
        if self.min_side is not None:
            side = int(self.min_side)
        elif self.min_scale is not None:
            side = 1  # an explicit scale is honoured as given
        else:
            side = STPP_MIN_FEATURE_SIDE * total_stride(model)
        self._resolved = (scale, side)

    def smallest_input(self, crop: int) -> int:
        """Smallest side a sub-net's input may be resized to for ``crop`` px images."""
        if not self.small_inputs:
            return crop
        if self._resolved is None:
            raise RuntimeError("prepare() was not called")
        scale, side = self._resolved
        return min(crop, max(1, math.ceil(scale * crop), side))

    def step(self, model: ResidualNet, images: Tensor, labels: Tensor, rng: random.Random) -> dict[str, Tensor]:
        if self._resolved is None:
            self._resolve(model)
        plans = [SubnetPlan.sample(model.layout, rng, self.space) for _ in range(self.n_subnets)]
        sizes = [self._input_size(images, rng) for _ in plans]
        # prefix sharing needs every sub-net to see the full-size batch
        share = self.share_prefix and self.smallest_input(images.shape[-1]) >= images.shape[-1]
        # a full-size full-net draw is identical to the teacher: its KL and gradient are exactly zero
        runs = [(p, s) for p, s in zip(plans, sizes) if not (p.is_full and s == images.shape[-1])]
        if share:
            logits, taps = model.forward_with_taps(images)
            ce = F.cross_entropy(logits, labels)
            teacher = logits.detach()
            kls = [kl_to_teacher(model.forward_from_taps(taps, plan), teacher, self.kl_minus) for plan, _ in runs]
            self.backward(ce + sum(kls, ce.new_zeros(())))  # one backward of CE + every KL
        else:
            # the paper's loop: one backward per forward frees each graph before the next runs
            # (same memory as CT)
            logits = model(images)
            ce = F.cross_entropy(logits, labels)
            self.backward(ce)
            teacher = logits.detach()
            kls = []
            for plan, size in runs:
                x = images if size == images.shape[-1] else F.interpolate(
                    images, size=(size, size), mode="bilinear", align_corners=False
                )
                kl = kl_to_teacher(model(x, plan), teacher, self.kl_minus)
                self.backward(kl)
                kls.append(kl)
        total_kl = sum((kl.detach() for kl in kls), ce.new_zeros(()))
        return {"loss": ce.detach() + total_kl, "ce": ce.detach(), "kl": total_kl}

    def _input_size(self, images: Tensor, rng: random.Random) -> int:
        crop = images.shape[-1]
        low = self.smallest_input(crop)
        if low >= crop:
            return crop  # no draw: the plans drawn are then the same as without small inputs
        return rng.randint(low, crop)
