"""Training schemes as small strategy objects: CT, ST, ST++ and stochastic depth.

Each method does the forward/backward work of one batch and leaves the optimizer step to the
Trainer, so every scheme shares the same loop, schedule, checkpoints and events.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .models import ResidualNet
from .plan import SubnetPlan, _check_space

__all__ = ["METHODS", "Method", "CommonTraining", "StimulativeTraining", "StochasticDepth", "make_method"]


class Method:
    """Interface: ``step`` runs forward and backward for one batch.

    It returns detached scalar tensors (loss terms); the Trainer turns them into floats once
    per step, so a GPU is synchronised only where the numbers are needed.
    """

    name = "base"

    def prepare(self, model: ResidualNet) -> None:
        """Called once before training (and after loading) to set model-level state."""

    def step(self, model: ResidualNet, images: Tensor, labels: Tensor, rng: random.Random) -> dict[str, float]:
        raise NotImplementedError

    def options(self) -> dict[str, Any]:
        return {}

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, **self.options()}


class CommonTraining(Method):
    """CT: cross-entropy on the main network only."""

    name = "ct"

    def step(self, model: ResidualNet, images: Tensor, labels: Tensor, rng: random.Random) -> dict[str, float]:
        logits = model(images)
        loss = F.cross_entropy(logits, labels)
        loss.backward()
        return {"loss": loss.detach(), "ce": loss.detach()}


def kl_to_teacher(student: Tensor, teacher: Tensor, z_score: bool = False) -> Tensor:
    """KL(softmax(teacher) || softmax(student)), batch mean; ``z_score`` gives ST++'s KL-."""
    if z_score:
        student = F.layer_norm(student, student.shape[-1:])
        teacher = F.layer_norm(teacher, teacher.shape[-1:])
    return F.kl_div(F.log_softmax(student, dim=-1), F.log_softmax(teacher, dim=-1), reduction="batchmean", log_target=True)


@dataclass
class StimulativeTraining(Method):
    """ST (and ST++ with its options): the main net teaches sampled ordered sub-nets.

    The main net's logits are detached, so the KL gradient reaches the shared weights only
    through the sub-network's own forward pass. With ``share_prefix`` the sub-net reuses the
    main net's activations for the blocks they have in common (same values and gradients; the
    shared BN layers then update their running statistics once per step instead of twice);
    one backward of CE + KL replaces the two separate backward passes.
    """

    n_subnets: int = 1
    kl_minus: bool = False
    small_inputs: bool = False
    min_scale: float = 0.43
    space: list[list[int]] | None = None
    share_prefix: bool = True
    name: str = field(default="st")

    def options(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("name")
        return d

    def prepare(self, model: ResidualNet) -> None:
        self.space = _check_space(model.layout, self.space)

    def step(self, model: ResidualNet, images: Tensor, labels: Tensor, rng: random.Random) -> dict[str, float]:
        plans = [SubnetPlan.sample(model.layout, rng, self.space) for _ in range(self.n_subnets)]
        sizes = [self._input_size(images, rng) for _ in plans]
        share = self.share_prefix and not self.small_inputs
        if share:
            logits, taps = model.forward_with_taps(images)
        else:
            logits = model(images)
        ce = F.cross_entropy(logits, labels)
        teacher = logits.detach()
        if not share:
            ce.backward()  # frees the main graph before the sub-nets run (paper: same memory)
        total_kl = ce.new_zeros(())
        pending = ce if share else None
        for plan, size in zip(plans, sizes):
            if plan.is_full and size == images.shape[-1]:
                continue  # identical to the teacher: KL and its gradient are exactly zero
            if share:
                student = model.forward_from_taps(taps, plan)
            else:
                x = images if size == images.shape[-1] else F.interpolate(
                    images, size=(size, size), mode="bilinear", align_corners=False
                )
                student = model(x, plan)
            kl = kl_to_teacher(student, teacher, self.kl_minus)
            total_kl = total_kl + kl.detach()
            if share:
                pending = pending + kl
            else:
                kl.backward()
        if pending is not None:
            pending.backward()
        return {"loss": ce.detach() + total_kl, "ce": ce.detach(), "kl": total_kl}

    def _input_size(self, images: Tensor, rng: random.Random) -> int:
        crop = images.shape[-1]
        if not self.small_inputs:
            return crop
        return rng.randint(max(1, math.ceil(self.min_scale * crop)), crop)


@dataclass
class StochasticDepth(Method):
    """Huang et al. 2016: drop whole branches at random, survival 1 -> ``final_survival``.

    Survival decays linearly with block depth; at evaluation each branch is scaled by its
    survival probability (``branch_scale``), which the checkpoint records.
    """

    final_survival: float = 0.5
    name: str = field(default="sd")

    def options(self) -> dict[str, Any]:
        return {"final_survival": self.final_survival}

    def survival(self, model: ResidualNet) -> list[float]:
        n = len(model.blocks)
        return [1.0 - (i + 1) / n * (1.0 - self.final_survival) for i in range(n)]

    def prepare(self, model: ResidualNet) -> None:
        for block, p in zip(model.blocks, self.survival(model)):
            block.branch_scale = p

    def step(self, model: ResidualNet, images: Tensor, labels: Tensor, rng: random.Random) -> dict[str, float]:
        keep = [rng.random() < p for p in self.survival(model)]
        stages = tuple(tuple(b for b in stage if keep[b]) for stage in model.layout.stages)
        plan = SubnetPlan(model.layout, stages)
        logits = model(images, plan)
        loss = F.cross_entropy(logits, labels)
        loss.backward()
        return {"loss": loss.detach(), "ce": loss.detach()}


METHODS = ("ct", "st", "stpp", "sd")


def make_method(name: str, **options: Any) -> Method:
    """Build a method by name; unknown options are an error, not silently ignored."""
    key = name.lower().replace("+", "p")
    opts = {k: v for k, v in options.items() if v is not None}
    try:
        if key == "ct":
            if opts:
                raise TypeError(f"unexpected options {sorted(opts)}")
            return CommonTraining()
        if key == "st":
            return StimulativeTraining(name="st", **opts)
        if key in ("stpp", "stplusplus"):
            defaults: dict[str, Any] = {"n_subnets": 6, "kl_minus": True, "small_inputs": True}
            defaults.update(opts)
            return StimulativeTraining(name="stpp", **defaults)
        if key == "sd":
            return StochasticDepth(**opts)
    except TypeError as exc:
        raise ValueError(f"bad options for method {name!r}: {exc}") from None
    raise ValueError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}")


def method_from_description(desc: dict[str, Any]) -> Method:
    opts = dict(desc)
    name = str(opts.pop("name", "ct"))
    if name in ("st", "stpp"):
        return StimulativeTraining(name=name, **opts)
    return make_method(name, **opts)

