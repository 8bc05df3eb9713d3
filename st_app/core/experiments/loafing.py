"""Network loafing (paper figure 2): a sub-net trained alone vs the same sub-net inside CT / ST.

The "alone" network is the sub-net's own architecture trained by itself: a ResidualNet
whose every forward runs the sub-net's plan (:class:`FixedPlanTraining`), so it has exactly
the sub-net's stem, blocks (with their ids), projections and head, and the blocks outside
the plan never run. It is trained with the CT checkpoint's recorded recipe (same data set,
epochs, batch size, learning rate, schedule, seed; the same seed also gives the same
initial weights). ``--epochs`` may override the recipe for speed; the report says so.
"""

from __future__ import annotations

import copy
import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch.nn.functional as F
from torch import Tensor

from ..data import ImageData
from ..evaluate import BNMode, accuracy, calibration_images, recalibrate_bn
from ..methods import Method
from ..models import ResidualNet
from ..plan import NetLayout, SubnetPlan
from .common import (
    ExperimentCancelled,
    Partial,
    Progress,
    ShouldStop,
    Steps,
    check_same_architecture,
    checkpoint_info,
)

__all__ = ["FixedPlanTraining", "LoafingReport", "default_loafing_plans", "loafing", "recipe_of"]


class FixedPlanTraining(Method):
    """Common training of one fixed sub-net: every step runs ``model(x, plan)`` only."""

    name = "fixed_plan"

    def __init__(self, plan: SubnetPlan | str) -> None:
        self.plan_text = str(plan)
        self.plan: SubnetPlan | None = plan if isinstance(plan, SubnetPlan) else None

    def prepare(self, model: ResidualNet) -> None:
        if self.plan is None or self.plan.layout != model.layout:
            self.plan = SubnetPlan.parse(self.plan_text, model.layout)

    def step(self, model: ResidualNet, images: Tensor, labels: Tensor, rng: random.Random) -> dict[str, Any]:
        assert self.plan is not None, "prepare() was not called"
        logits = model(images, self.plan)
        loss = F.cross_entropy(logits, labels)
        self.backward(loss)
        return {"loss": loss.detach(), "ce": loss.detach()}

    def options(self) -> dict[str, Any]:
        return {"plan": self.plan_text}

    def eval_plan(self) -> SubnetPlan | None:
        """The trained plan: the alone-net's per-epoch test accuracy is the plan's, not the
        full net's (whose blocks outside the plan never trained)."""
        return self.plan


def default_loafing_plans(layout: NetLayout) -> list[SubnetPlan]:
    """The smallest ordered sub-net and two others: half depth and one block short of full."""
    depths = layout.depths
    candidates = [
        [1] * len(depths),
        [max(1, (n + 1) // 2) for n in depths],
        [max(1, n - 1) for n in depths],
        [min(n, i + 1) for i, n in enumerate(depths)],  # growing with depth
        [max(1, n - i) for i, n in enumerate(depths)],  # shrinking with depth
    ]
    out: list[SubnetPlan] = []
    for d in candidates:
        plan = SubnetPlan.from_depths(layout, d)
        if plan not in out and not plan.is_full:
            out.append(plan)
    return out[:3]


def recipe_of(checkpoint: Any) -> dict[str, Any]:
    """The training recipe (TrainConfig dict) a checkpoint records; a clear error without one."""
    config = (checkpoint.meta or {}).get("config")
    if not isinstance(config, dict):
        raise ValueError(
            f"{checkpoint.path} records no training recipe (meta.json 'config'); training the sub-nets alone "
            "needs the CT run's recipe: use a run folder written by st_app train"
        )
    return dict(config)


@dataclass
class LoafingReport:
    bn: str
    n_images: int
    calib_images: int
    recipe: dict[str, Any]
    overrides: dict[str, Any]
    trained_with: dict[str, Any]
    checkpoints: dict[str, dict[str, Any]]
    st_recipe: dict[str, Any] | None = None
    results: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "bn": self.bn,
            "alone_bn": "own statistics (the alone-net only ever ran its plan)",
            "n_images": self.n_images,
            "calib_images": self.calib_images,
            "checkpoints": self.checkpoints,
            "recipe": self.recipe,
            "overrides": self.overrides,
            "trained_with": self.trained_with,
            "st_recipe": self.st_recipe,
            "train_seed": self.recipe.get("seed"),
            "results": self.results,
            "seconds": round(self.seconds, 3),
        }


def loafing(
    ct: Any,
    st: Any,
    data: ImageData,
    *,
    plans: Sequence[SubnetPlan] | None = None,
    epochs: int | None = None,
    bn: BNMode = "main",
    calib_images: Tensor | None = None,
    device: str = "auto",
    progress: Progress = None,
    should_stop: ShouldStop = None,
    partial: Partial = None,
) -> LoafingReport:
    """Train each plan alone with the CT recipe, compare with the plan inside CT and ST.

    ``ct``/``st`` are loaded :class:`~st_app.core.checkpoint.Checkpoint` objects. ``epochs``
    overrides the recipe's (recorded in ``overrides``). With ``calib_images`` the other BN
    setting is reported too (``other_bn``). Raises :class:`ExperimentCancelled` when stopped.
    """
    from ..train import TrainConfig, Trainer  # train imports evaluate; keep import light for users

    t_start = time.perf_counter()
    check_same_architecture({"ct": ct.model, "st": st.model})
    if bn not in ("main", "recalibrate"):
        raise ValueError(f"unknown BN setting {bn!r}; choose 'main' or 'recalibrate'")
    if bn == "recalibrate" and calib_images is None:
        raise ValueError("bn='recalibrate' needs training images to re-estimate statistics")
    layout = ct.model.layout
    plans = list(plans) if plans else default_loafing_plans(layout)
    for p in plans:
        if p.layout != layout:
            raise ValueError(f"plan {p} was made for another network layout")
    recipe = recipe_of(ct)
    if recipe.get("model", ct.model.config.arch) != ct.model.config.arch:
        raise ValueError(f"{ct.path}: its recipe names {recipe.get('model')} but the weights are a "
                         f"{ct.model.config.arch}")
    overrides: dict[str, Any] = {}
    if epochs is not None:
        if epochs < 1:
            raise ValueError(f"epochs must be at least 1, got {epochs}")
        overrides["epochs"] = int(epochs)
    config = TrainConfig.from_dict({**recipe, **overrides})
    config.method, config.method_options = "ct", {}  # the Trainer's method is replaced below
    config.device = device
    # The recipe's per-epoch BN re-estimation would run the *full* net (untrained blocks
    # included) through the alone-net; the faithful translation re-estimates its statistics
    # for its own plan once after training (re-estimation never changes weights).
    reestimate = bool(config.bn_reestimate)
    config.bn_reestimate = False
    trained_with = {**recipe, **overrides, "device": device}
    c = ct.model.config
    if (data.num_classes, data.in_channels) != (c.num_classes, c.in_channels):
        raise ValueError(f"data set {data.name} does not fit the checkpoints' {c.arch} "
                         f"({c.in_channels} channels, {c.num_classes} classes)")
    steps_each = math.ceil(len(data.train_y) / config.batch_size) * config.epochs
    steps = Steps(len(plans) * (steps_each + 1), progress, should_stop)
    report = LoafingReport(
        bn=bn, n_images=int(len(data.test_y)),
        calib_images=0 if calib_images is None else int(len(calib_images)),
        recipe=recipe, overrides=overrides, trained_with=trained_with,
        checkpoints={"ct": checkpoint_info(ct), "st": checkpoint_info(st)},
        st_recipe=(st.meta or {}).get("config"),
    )
    other: BNMode = "recalibrate" if bn == "main" else "main"
    for plan in plans:
        steps.check()
        trainer = Trainer(config, data=data, name=f"alone {plan}")
        trainer.method = FixedPlanTraining(plan)
        trainer.method.prepare(trainer.model)
        t0 = time.perf_counter()
        for _ in trainer.iter_steps():
            steps.advance()
            if should_stop is not None and should_stop():
                trainer.control.stop()
        if trainer.control.stopped:
            raise ExperimentCancelled("loafing analysis cancelled")
        train_seconds = time.perf_counter() - t0
        alone_model = trainer.model.eval()
        assert isinstance(trainer.data, ImageData)  # loafing trains on in-memory sets
        if reestimate:
            recalibrate_bn(alone_model, plan,
                           calibration_images(trainer.data.train_x, config.bn_reestimate_images, config.seed))
        test_x, test_y = trainer.data.test_x, trainer.data.test_y
        row: dict[str, Any] = {
            "plan": str(plan),
            "depths": list(plan.depths),
            "alone": round(accuracy(alone_model, plan, test_x, test_y, bn="main"), 4),
        }
        calib = None if calib_images is None else calib_images.to(test_x.device)
        for name, ck in (("ct", ct), ("st", st)):
            model = ck.model.to(test_x.device)
            row[f"within_{name}"] = round(accuracy(model, plan, test_x, test_y, bn=bn, calib_images=calib), 4)
        if calib is not None:
            row["other_bn"] = {"bn": other, **{
                f"within_{name}": round(accuracy(ck.model, plan, test_x, test_y, bn=other, calib_images=calib), 4)
                for name, ck in (("ct", ct), ("st", st))}}
        row["alone_epochs"] = config.epochs
        # the alone-run's per-epoch test accuracy, where the Trainer measured the plan itself
        # (Method.eval_plan); a full-net figure of the alone-net would mean nothing
        if trainer.history and all(r.get("eval_plan") == str(plan) for r in trainer.history):
            row["alone_curve"] = [round(float(r["test_acc"]), 4) for r in trainer.history]
        row["alone_bn_reestimated_for_plan"] = reestimate  # the recipe's bn_reestimate, applied to the plan
        row["alone_train_seconds"] = round(train_seconds, 3)
        row["parameters"] = alone_model.plan_parameters(plan)
        report.results.append(row)
        steps.advance()
        if partial is not None and len(report.results) < len(plans):
            partial(copy.deepcopy(report.to_dict()))  # a snapshot: the worker keeps filling its dicts
    report.seconds = time.perf_counter() - t_start
    return report
