"""Statistics of all ordered sub-nets (paper figure 5): CT vs ST distributions.

Every ordered sub-net is evaluated through the prefix tree; above ``limit`` plans a seeded
uniform sample is taken instead (``select_plans``), still through the tree.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch import Tensor

from ..evaluate import PlanResult, select_plans, summarize
from ..models import ResidualNet
from .common import ExperimentCancelled, Partial, Progress, ShouldStop, Steps, check_same_architecture
from .prefix_sweep import tree_sweep

__all__ = ["SubnetStats", "SubnetsReport", "subnet_statistics"]


@dataclass
class SubnetStats:
    """One model's accuracies over the sub-nets, with their summary."""

    results: list[PlanResult]

    @property
    def accuracies(self) -> np.ndarray:
        return np.array([r.accuracy for r in self.results], dtype=np.float64)

    def summary(self) -> dict[str, float]:
        return summarize(self.accuracies)

    def to_dict(self) -> dict[str, Any]:
        s = self.summary()
        return {
            **{k: round(v, 4) for k, v in s.items()},
            "n_plans": len(self.results),
            "results": [{"plan": str(r.plan), "depths": list(r.plan.depths), "accuracy": round(r.accuracy, 4)}
                        for r in self.results],
        }


@dataclass
class SubnetsReport:
    """Per model name (``ct``, ``st``), the statistics of the same plans under one BN setting."""

    bn: str
    n_images: int
    calib_images: int
    sampled: bool
    seed: int
    n_plans: int
    models: dict[str, SubnetStats] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "bn": self.bn,
            "n_images": self.n_images,
            "calib_images": self.calib_images,
            "sampled": self.sampled,
            "seed": self.seed,
            "n_plans": self.n_plans,
            **{name: stats.to_dict() for name, stats in self.models.items()},
        }


def subnet_statistics(
    models: Mapping[str, ResidualNet],
    images: Tensor,
    labels: Tensor,
    *,
    bn: str = "main",
    calib_images: Tensor | None = None,
    limit: int = 1000,
    seed: int = 0,
    progress: Progress = None,
    should_stop: ShouldStop = None,
    partial: Partial = None,
) -> SubnetsReport:
    """Accuracy of every ordered sub-net (or a seeded sample of ``limit``) for each model.

    All models get the same plans (and the same calibration images), so their distributions
    compare like for like. Raises :class:`ExperimentCancelled` when stopped.
    """
    check_same_architecture(models)
    first = next(iter(models.values()))
    plans, sampled = select_plans(first, limit, seed)
    steps = Steps(len(plans) * len(models), progress, should_stop)
    report = SubnetsReport(bn=bn, n_images=int(len(labels)),
                           calib_images=0 if calib_images is None or bn == "main" else int(len(calib_images)),
                           sampled=sampled, seed=seed, n_plans=len(plans))
    for k, (name, model) in enumerate(models.items()):
        steps.check()
        result = tree_sweep(model, plans, images, labels, bn=bn, calib_images=calib_images,
                            progress=steps.sub(k * len(plans)), should_stop=should_stop)
        if len(result.results) < len(plans):
            raise ExperimentCancelled("sub-network statistics cancelled")
        report.models[name] = SubnetStats(result.results)
        if partial is not None and len(report.models) < len(models):
            partial(copy.deepcopy(report.to_dict()))  # a snapshot: the worker keeps filling its dicts
    return report
