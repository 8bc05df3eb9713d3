"""ST and ST++: the main net teaches sampled ordered sub-nets (the paper's method).

The step is the authors' (github Sunshine-Ye/NIPS22-ST, ``train.py``), written from the facts
of their code and checked against an independent transcription in ``tests/test_stpp_exact.py``:

1. optionally (``same_scale_image``) the main net's batch is resized to a random smaller side;
2. main forward; under KL- (``kl_minus``) the logits are normalised (:mod:`.losses`) and the main
   cross-entropy is computed **on the normalised logits**; ``main_weight * CE`` backward;
3. the teacher is the (normalised) main logits, detached;
4. ``n_subnets`` times: sample an ordered sub-net from ``space``; with ``small_inputs`` resize
   the input to ``s x s``, ``s = randint(int(crop * min_scale), crop)``; under the authors'
   ``sub_input`` the resized batch is normalised *again* with the data set's constants and
   becomes the next sub-net's input (their loop reassigns ``input``: resizes and
   normalisations compound); forward, normalise under KL-, sub-net loss, ``weight * loss``
   backward (gradients of all sub-nets add up);
5. one optimizer step (the Trainer's).

Deviations the project offers, each a named option that is off by default:
``main_ce="raw"`` (CE on the raw logits under KL-), ``sub_input="independent"`` (every sub-net
resizes the main net's batch, no re-normalisation), ``min_side`` (a floor on the sub-net input
side; ``"auto"`` = 3 x the network's total stride, the project's former default), and
``norm_eps`` other than the authors' 1e-7.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ..models import ResidualNet
from ..plan import SubnetPlan
from .base import Method, total_stride
from .losses import NORM_TYPES, SUB_LOSSES, adaptive_amplitude, normalise_logits, subnet_loss
from .spaces import resolve_space

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "KL_RAMPS",
    "MAIN_CE",
    "STPP_MIN_FEATURE_SIDE",
    "STPP_MIN_SCALE",
    "SUB_INPUTS",
    "StepDraws",
    "StimulativeTraining",
]

# Dtrans7, the authors' ST++ resize scheme: s uniform in [int(crop * 0.43), crop], no floor.
STPP_MIN_SCALE = 0.43
# ``min_side="auto"`` (a project deviation): keep a 3 x 3 map at the last stage.
STPP_MIN_FEATURE_SIDE = 3
# The constants the authors' loader normalises with and their sub-net resize re-applies.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

KL_RAMPS = ("none", "cos", "rcos")
SUB_INPUTS = ("authors", "independent")
MAIN_CE = ("normalised", "raw")


@dataclass
class StepDraws:
    """The random choices of one step: the main net's input side (None: as given) and, per
    sub-net, its plan and input side (None: the main net's input)."""

    main_size: int | None
    subnets: list[tuple[SubnetPlan, int | None]]


def _choice(value: str, allowed: tuple[str, ...], what: str) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}; choose one of {', '.join(allowed)}")


@dataclass
class StimulativeTraining(Method):
    """ST (``name="st"``) and ST++ (``name="stpp"``): one class, the authors' options as fields.

    The ``st`` defaults are the paper's ST step (one sub-net, plain KL at T=1, full space);
    ``make_method("stpp")`` sets ST++'s: KL-, 6 sub-nets, small inputs, space3. With
    ``share_prefix`` (exact, ST without small inputs only) a sub-net reuses the main net's
    activations for the blocks they have in common and one backward of CE + KL replaces the
    separate passes: the same gradients; the shared BN layers then update their running
    statistics once per step instead of twice.
    """

    n_subnets: int = 1
    kl_minus: bool = False
    norm_type: str = "layernorm"
    amplitude: float = 1.0
    norm_eps: float = 1e-7
    temperature: float = 1.0
    kl_weight: float = 1.0
    main_weight: float = 1.0
    kl_ramp: str = "none"
    sampling_begin_epoch: int = 0
    sub_loss: str = "kl"
    small_inputs: bool = False
    min_scale: float = STPP_MIN_SCALE
    min_side: int | str | None = None
    same_scale_image: bool = False
    sub_input: str = "authors"
    main_ce: str = "normalised"
    space: list[list[int]] | str | None = None
    space_name: str | None = None
    renorm_mean: list[float] | None = None
    renorm_std: list[float] | None = None
    share_prefix: bool = True
    name: str = field(default="st")

    def __post_init__(self) -> None:
        if self.min_scale is None:
            self.min_scale = STPP_MIN_SCALE
        if not 0 < float(self.min_scale) <= 1:
            raise ValueError(f"min_scale must be in (0, 1], got {self.min_scale}")
        if isinstance(self.min_side, str):
            if self.min_side != "auto":
                raise ValueError(f"min_side must be a number of pixels or 'auto', got {self.min_side!r}")
        elif self.min_side is not None and int(self.min_side) < 1:
            raise ValueError(f"min_side must be at least 1 pixel, got {self.min_side}")
        if int(self.n_subnets) < 1:
            raise ValueError(f"n_subnets must be at least 1, got {self.n_subnets}")
        for what, v in (("temperature", self.temperature), ("amplitude", self.amplitude), ("norm_eps", self.norm_eps)):
            if not float(v) > 0:
                raise ValueError(f"{what} must be positive, got {v}")
        for what, v in (("kl_weight", self.kl_weight), ("main_weight", self.main_weight),
                        ("sampling_begin_epoch", self.sampling_begin_epoch)):
            if not float(v) >= 0:
                raise ValueError(f"{what} must not be negative, got {v}")
        _choice(self.norm_type, NORM_TYPES, "logit normalisation")
        _choice(self.sub_loss, SUB_LOSSES, "sub-net loss")
        _choice(self.kl_ramp, KL_RAMPS, "KL-weight ramp")
        _choice(self.sub_input, SUB_INPUTS, "sub-net input mode")
        _choice(self.main_ce, MAIN_CE, "main cross-entropy mode")
        self._epoch, self._epochs = 0, 1
        self._renorm: tuple[Tensor, Tensor] | None = None

    # ------------------------------------------------------------------ options
    def options(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("name")
        return d

    def prepare(self, model: ResidualNet) -> None:
        """Resolve what depends on the network: the space, ``min_side="auto"``, the constants."""
        if isinstance(self.space, str):
            self.space_name = self.space.strip().lower()
        elif self.space is None and self.space_name is None:
            self.space_name = "default"
        self.space = resolve_space(self.space, model.layout)
        if self.min_side == "auto":
            self.min_side = STPP_MIN_FEATURE_SIDE * total_stride(model)
        channels = int(model.config.in_channels)
        if self.renorm_mean is None or self.renorm_std is None:
            # the authors re-apply ImageNet's Normalize; on other channel counts the same
            # constants' grey average (0.449, 0.226) keeps the quirk's size (std x 4.4 per pass)
            if channels == 3:
                self.renorm_mean, self.renorm_std = list(IMAGENET_MEAN), list(IMAGENET_STD)
            else:
                self.renorm_mean = [round(sum(IMAGENET_MEAN) / 3, 6)] * channels
                self.renorm_std = [round(sum(IMAGENET_STD) / 3, 6)] * channels
        if len(self.renorm_mean) != channels or len(self.renorm_std) != channels:
            raise ValueError(f"renorm_mean / renorm_std need {channels} values, one per input channel")
        self._renorm = None
        self._check_smallest_input(model)

    @torch.no_grad()
    def _check_smallest_input(self, model: ResidualNet) -> None:
        """The authors' range has no floor: on small images it can go below what a network with a
        large total stride accepts (DenseNet-121 on 32 px). Say so before training, not mid-epoch."""
        if not (self.small_inputs or self.same_scale_image):
            return
        c = model.config
        low = self._low(int(c.image_size))
        was_training = model.training
        model.eval()
        try:
            p = next(model.parameters())
            model(torch.zeros(1, int(c.in_channels), low, low, device=p.device, dtype=p.dtype))
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ValueError(
                f"ST++'s smallest sub-net input, {low} px (int({c.image_size} x {self.min_scale}), the authors' range "
                f"without a floor), is too small for {c.arch} ({first}); set min_side (--min-side auto or a side "
                "in pixels)"
            ) from None
        finally:
            model.train(was_training)

    def default_bn_reestimate(self) -> bool:
        return self.name == "stpp"

    def begin_epoch(self, epoch: int, epochs: int) -> None:
        self._epoch, self._epochs = int(epoch), max(1, int(epochs))

    def sub_weight(self) -> float:
        """Weight of each sub-net's loss this epoch (the authors' ramps are per epoch)."""
        progress = 0.5 * (1.0 - math.cos(math.pi * self._epoch / self._epochs))
        if self.kl_ramp == "cos":
            return float(self.kl_weight) * progress
        if self.kl_ramp == "rcos":
            return float(self.kl_weight) - float(self.kl_weight) * progress
        return float(self.kl_weight)

    def smallest_input(self, crop: int) -> int:
        """Smallest side a sub-net's input may be resized to for ``crop`` px images."""
        if not self.small_inputs:
            return crop
        return self._low(crop)

    def _low(self, crop: int) -> int:
        if self.min_side == "auto":
            raise RuntimeError("prepare() was not called")
        low = max(1, int(crop * float(self.min_scale)), int(self.min_side or 1))
        return min(low, crop)

    # --------------------------------------------------------------------- step
    def draw(self, model: ResidualNet, images: Tensor, rng: random.Random) -> StepDraws:
        """The step's random choices, in the authors' order (sub-net, then its input side)."""
        crop = int(images.shape[-1])
        main_size = rng.randint(self._low(crop), crop) if self.same_scale_image else None
        if self._epoch < int(self.sampling_begin_epoch):
            return StepDraws(main_size, [])
        space = self.space if isinstance(self.space, list) else resolve_space(self.space, model.layout)
        subnets: list[tuple[SubnetPlan, int | None]] = []
        for _ in range(int(self.n_subnets)):
            plan = SubnetPlan.sample(model.layout, rng, space)
            subnets.append((plan, rng.randint(self._low(crop), crop) if self.small_inputs else None))
        return StepDraws(main_size, subnets)

    def step(self, model: ResidualNet, images: Tensor, labels: Tensor, rng: random.Random) -> dict[str, Tensor]:
        return self.run_step(model, images, labels, self.draw(model, images, rng))

    def _normalise(self, z: Tensor) -> Tensor:
        return normalise_logits(z, self.norm_type, float(self.amplitude), float(self.norm_eps))

    def _resize(self, x: Tensor, size: int, renorm: bool) -> Tensor:
        """A tensor ``Resize((s, s))`` (bilinear, no antialias), then, if asked, ``Normalize``."""
        if size != x.shape[-1] or size != x.shape[-2]:
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=False)
        if not renorm:
            return x
        if self._renorm is None or self._renorm[0].device != x.device or self._renorm[0].dtype != x.dtype:
            if self.renorm_mean is None or self.renorm_std is None:
                raise RuntimeError("prepare() was not called")
            shape = (1, len(self.renorm_mean), 1, 1)
            self._renorm = (torch.tensor(self.renorm_mean, dtype=x.dtype, device=x.device).view(shape),
                            torch.tensor(self.renorm_std, dtype=x.dtype, device=x.device).view(shape))
        mean, std = self._renorm
        return (x - mean) / std

    def run_step(self, model: ResidualNet, images: Tensor, labels: Tensor, draws: StepDraws) -> dict[str, Tensor]:
        """Forward and backward of one batch with the choices ``draws`` fixes."""
        authors = self.sub_input == "authors"
        x_main = images
        if draws.main_size is not None:
            x_main = self._resize(images, draws.main_size, renorm=authors)
        share = self.share_prefix and not self.small_inputs and bool(draws.subnets)
        if share:
            logits, taps = model.forward_with_taps(x_main)
        else:
            logits = model(x_main)
        normed = self._normalise(logits) if self.kl_minus else logits
        ce = F.cross_entropy(normed if self.main_ce == "normalised" else logits, labels)
        teacher = normed.detach()
        scale = adaptive_amplitude(teacher, self.norm_type)
        main_term = float(self.main_weight) * ce
        pending: Tensor | None = main_term if share else None
        if not share:
            self.backward(main_term)  # frees the main graph before the sub-nets run (same memory as CT)
        weight = self.sub_weight()
        total_sub = ce.new_zeros(())
        weighted = ce.new_zeros(())
        x = x_main
        for plan, size in draws.subnets:
            if size is not None:
                x = self._resize(x if authors else x_main, size, renorm=authors)
            if plan.is_full and x is x_main and self.sub_loss != "label-ce":
                continue  # the teacher's own forward again: loss gradient exactly zero
            student = model.forward_from_taps(taps, plan) if share else model(x, plan)
            if self.kl_minus:
                student = self._normalise(student)
            loss = subnet_loss(self.sub_loss, student, teacher, labels, temperature=float(self.temperature),
                               scale=scale)
            total_sub = total_sub + loss.detach()
            weighted = weighted + weight * loss.detach()
            if pending is not None:
                pending = pending + weight * loss
            else:
                self.backward(weight * loss)
        if pending is not None:
            self.backward(pending)
        return {"loss": main_term.detach() + weighted, "ce": ce.detach(), "kl": total_sub}
