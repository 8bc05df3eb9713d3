"""Accuracy of sub-network plans, with the BN setting made explicit.

``bn="main"`` evaluates a sub-net with the main network's running statistics (the paper's
setting). ``bn="recalibrate"`` re-estimates the statistics for that sub-net on training
images first; the two can differ by tens of points, so every result says which it used.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from torch import Tensor, nn

from .data.types import calibration_subset
from .models import ResidualNet
from .plan import SubnetPlan, ordered_space, space_size
from .precision import active_precision, eval_batch_size
from .subnet_eval.ops import start_recalibration

__all__ = [
    "BN_MODES",
    "PlanResult",
    "SweepResult",
    "accuracy",
    "bn_state",
    "count_correct",
    "recalibrate_bn",
    "sweep",
    "select_plans",
]

BN_MODES = ("main", "recalibrate")
BNMode = Literal["main", "recalibrate"]


def _bn_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def running_stats(m: nn.modules.batchnorm._BatchNorm) -> tuple[Tensor, Tensor, Tensor]:
    """A BN layer's running mean, variance and batch count (layers built with statistics)."""
    mean, var, count = m.running_mean, m.running_var, m.num_batches_tracked
    if mean is None or var is None or count is None:
        raise ValueError("this BatchNorm layer keeps no running statistics")
    return mean, var, count


@contextmanager
def bn_state(model: nn.Module) -> Iterator[None]:
    """Restore BN running statistics, momenta and the train flag on exit."""
    layers = [m for m in _bn_layers(model) if m.running_mean is not None]
    saved = [([t.clone() for t in running_stats(m)], m.momentum) for m in layers]
    was_training = model.training
    try:
        yield
    finally:
        for m, (stats, momentum) in zip(layers, saved):
            for live, kept in zip(running_stats(m), stats):
                live.copy_(kept)
            m.momentum = momentum
        model.train(was_training)


@torch.no_grad()
def recalibrate_bn(
    model: ResidualNet,
    plan: SubnetPlan | None,
    images: Tensor,
    batch_size: int = 256,
) -> None:
    """Re-estimate BN running statistics for ``plan`` as a cumulative average over ``images``.

    Modifies the model; wrap in ``bn_state`` to keep the original statistics.
    """
    start_recalibration(_bn_layers(model))
    model.train()
    precision = active_precision(images.device)
    with precision.autocast():
        for start in range(0, len(images), batch_size):
            model(precision.prepare_input(images[start : start + batch_size]), plan)
    model.eval()


@torch.no_grad()
def _predict(
    model: ResidualNet,
    plan: SubnetPlan | None,
    images: Tensor,
    batch_size: int,
    before_batch: Callable[[], None] | None = None,
) -> Tensor:
    precision = active_precision(images.device)
    preds = []
    for start in range(0, len(images), batch_size):
        if before_batch is not None:
            before_batch()
        with precision.autocast():
            preds.append(model(precision.prepare_input(images[start : start + batch_size]), plan).argmax(dim=1))
    return torch.cat(preds) if preds else torch.empty(0, dtype=torch.long)


@torch.no_grad()
def count_correct(
    model: ResidualNet, plan: SubnetPlan | None, batches: Iterable[tuple[Tensor, Tensor]]
) -> tuple[Tensor, Tensor]:
    """(correct, seen) over ``batches`` with the model's current BN statistics, as device tensors.

    For sets that stream from disk and for sharded evaluation: the counts of several ranks add
    up (an all-reduce) before anything is read on the host. The model is left in eval mode.
    """
    device = next(model.parameters()).device
    precision = active_precision(device)
    correct = torch.zeros((), dtype=torch.long, device=device)
    seen = torch.zeros((), dtype=torch.long, device=device)
    model.eval()
    for x, y in batches:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with precision.autocast():
            pred = model(precision.prepare_input(x), plan).argmax(dim=1)
        correct += (pred == y).sum()
        seen += len(y)
    return correct, seen


def accuracy(
    model: ResidualNet,
    plan: SubnetPlan | None,
    images: Tensor,
    labels: Tensor,
    *,
    bn: BNMode = "main",
    calib_images: Tensor | None = None,
    batch_size: int | None = None,
    before_batch: Callable[[], None] | None = None,
) -> float:
    """Top-1 accuracy in percent of ``plan`` (None: the main net). The model is not modified.

    ``before_batch`` runs before each test batch; a caller cancels by raising from it (the
    BN statistics are restored all the same). Forwards use the active precision
    (:func:`st_app.core.precision.use_precision`) and, on a GPU, large test batches.
    """
    if batch_size is None:
        batch_size = eval_batch_size(images.device, int(images.shape[-1]))
    if bn not in BN_MODES:
        raise ValueError(f"unknown BN setting {bn!r}; choose 'main' or 'recalibrate'")
    with bn_state(model):
        if bn == "recalibrate":
            if calib_images is None or len(calib_images) == 0:
                raise ValueError("bn='recalibrate' needs training images to re-estimate statistics")
            recalibrate_bn(model, plan, calib_images)
        model.eval()
        pred = _predict(model, plan, images, batch_size, before_batch)
    return float((pred == labels.to(pred.device)).float().mean().item() * 100.0)


def calibration_images(train_x: Tensor, n: int = 1000, seed: int = 0) -> Tensor:
    """A fixed, seeded subset of training images for BN recalibration."""
    return calibration_subset(train_x, n, seed)


def summarize(accuracies: Sequence[float] | np.ndarray) -> dict[str, float]:
    """Mean, population std, min and max of accuracies (NaN when there are none)."""
    a = np.asarray(accuracies, dtype=np.float64)
    if a.size == 0:
        return {"mean": float("nan"), "std": float("nan"), "min": float("nan"), "max": float("nan")}
    return {"mean": float(a.mean()), "std": float(a.std()), "min": float(a.min()), "max": float(a.max())}


@dataclass
class PlanResult:
    plan: SubnetPlan
    accuracy: float

    def to_dict(self) -> dict[str, object]:
        return {"plan": str(self.plan), "depths": list(self.plan.depths), "accuracy": round(self.accuracy, 4)}


@dataclass
class SweepResult:
    bn: str
    n_images: int
    results: list[PlanResult] = field(default_factory=list)
    sampled: bool = False

    @property
    def accuracies(self) -> np.ndarray:
        return np.array([r.accuracy for r in self.results], dtype=np.float64)

    def summary(self) -> dict[str, float]:
        return summarize(self.accuracies)

    def to_dict(self) -> dict[str, object]:
        return {
            "bn": self.bn,
            "n_images": self.n_images,
            "sampled": self.sampled,
            "results": [r.to_dict() for r in self.results],
            "summary": {k: round(v, 4) for k, v in self.summary().items()},
        }


def select_plans(model: ResidualNet, limit: int = 1000, seed: int = 0) -> tuple[list[SubnetPlan], bool]:
    """All ordered sub-nets, or a seeded uniform sample of ``limit`` when there are more."""
    total = space_size(model.layout)
    if total <= limit:
        return ordered_space(model.layout), False
    rng = random.Random(seed)
    seen: dict[SubnetPlan, None] = {}
    while len(seen) < limit:
        seen[SubnetPlan.sample(model.layout, rng)] = None
    return list(seen), True


def sweep(
    model: ResidualNet,
    plans: Sequence[SubnetPlan],
    images: Tensor,
    labels: Tensor,
    *,
    bn: BNMode = "main",
    calib_images: Tensor | None = None,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> SweepResult:
    """Accuracy of many plans; ``progress(done, total)`` after each, ``should_stop`` to cancel."""
    out = SweepResult(bn=bn, n_images=int(len(labels)))
    for i, plan in enumerate(plans):
        if should_stop is not None and should_stop():
            break
        acc = accuracy(model, plan, images, labels, bn=bn, calib_images=calib_images)
        out.results.append(PlanResult(plan, acc))
        if progress is not None:
            progress(i + 1, len(plans))
    return out
