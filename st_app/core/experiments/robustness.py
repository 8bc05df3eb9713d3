"""Robustness of the ensemble (paper figure 6; Veit et al. 2016's lesion study).

(a) delete each block in turn (a shape-changing block keeps its projection shortcut);
(b) delete ``k`` random blocks, ``k = 1..K``, mean +- std over ``R`` seeded draws;
(c) swap ``k`` random disjoint pairs of same-shape blocks inside their stage.
The draws depend only on the layout and the seed, so CT and ST see exactly the same
damaged networks; every drawn plan is valid (it is built by the plan's own operations).
All plans of all models are evaluated through the prefix tree.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from ..evaluate import summarize
from ..models import ResidualNet
from ..plan import NetLayout, SubnetPlan
from .common import ExperimentCancelled, Partial, Progress, ShouldStop, Steps, check_same_architecture
from .prefix_sweep import tree_sweep

__all__ = [
    "RobustnessReport",
    "block_importance",
    "deletable_blocks",
    "delete_one_accuracies",
    "draw_deletions",
    "draw_swaps",
    "max_swaps",
    "robustness",
    "swappable_pairs",
]


def deletable_blocks(layout: NetLayout) -> list[int]:
    """Every block the layout lets a plan drop (in a ResNet all: an entry block keeps its projection)."""
    return [b for b in range(layout.num_blocks) if layout.can_drop(b)]


def _swap_key(layout: NetLayout, b: int) -> Any:
    """Blocks with equal keys in one stage may trade places (the layout's order rule)."""
    return None if layout.order == "free" else layout.shapes[b]


def swappable_pairs(layout: NetLayout) -> list[tuple[int, int]]:
    """Pairs of blocks in the same stage that may trade places (ResNets: identical shape)."""
    if layout.order == "fixed":
        return []
    pairs = []
    for stage in layout.stages:
        for i, a in enumerate(stage):
            for b in stage[i + 1 :]:
                if _swap_key(layout, a) == _swap_key(layout, b):
                    pairs.append((a, b))
    return pairs


def max_swaps(layout: NetLayout) -> int:
    """Most disjoint swaps a plan admits: per stage and swap class, half the blocks."""
    if layout.order == "fixed":
        return 0
    total = 0
    for stage in layout.stages:
        counts: dict[Any, int] = {}
        for b in stage:
            key = _swap_key(layout, b)
            counts[key] = counts.get(key, 0) + 1
        total += sum(c // 2 for c in counts.values())
    return total


def _rng(kind: str, seed: int, k: int, repeat: int) -> random.Random:
    # One independent, reproducible stream per (kind, seed, k, draw).
    return random.Random(f"st_app.robustness:{kind}:{seed}:{k}:{repeat}")


def draw_deletions(layout: NetLayout, k: int, repeats: int, seed: int = 0) -> list[tuple[SubnetPlan, list[int]]]:
    """``repeats`` plans with ``k`` random blocks deleted from the full net, and the blocks."""
    blocks = deletable_blocks(layout)
    if not 1 <= k <= len(blocks):
        raise ValueError(
            f"cannot delete k={k} blocks: this network has {len(blocks)} deletable blocks (k must be 1..{len(blocks)})"
        )
    out = []
    for r in range(repeats):
        chosen = sorted(_rng("delete", seed, k, r).sample(blocks, k))
        plan = layout.full_plan()
        for b in chosen:
            plan = plan.delete(b)
        out.append((plan, chosen))
    return out


def draw_swaps(
    layout: NetLayout, k: int, repeats: int, seed: int = 0
) -> list[tuple[SubnetPlan, list[tuple[int, int]]]]:
    """``repeats`` plans with ``k`` random disjoint same-shape pairs swapped, and the pairs."""
    most = max_swaps(layout)
    if not 1 <= k <= most:
        raise ValueError(
            f"cannot swap k={k} pairs: this network allows at most {most} disjoint swaps of same-shape blocks "
            f"inside a stage (k must be 1..{most})"
        )
    pairs = swappable_pairs(layout)
    out = []
    for r in range(repeats):
        rng = _rng("swap", seed, k, r)
        used: set[int] = set()
        chosen: list[tuple[int, int]] = []
        plan = layout.full_plan()
        for _ in range(k):
            free = [p for p in pairs if p[0] not in used and p[1] not in used]
            a, b = rng.choice(free)
            used.update((a, b))
            chosen.append((a, b))
            plan = plan.swap(a, b)
        out.append((plan, chosen))
    return out


@dataclass
class RobustnessReport:
    bn: str
    n_images: int
    calib_images: int
    seed: int
    repeats: int
    max_k: int
    max_swaps: int
    main: dict[str, float] = field(default_factory=dict)
    delete_one: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    delete_k: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    swap_k: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    draws: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def importance(self, name: str) -> list[float]:
        """Accuracy drop (points) when each block alone is deleted; the app colours blocks by it."""
        return [row["drop"] for row in self.delete_one[name]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "bn": self.bn,
            "n_images": self.n_images,
            "calib_images": self.calib_images,
            "seed": self.seed,
            "repeats": self.repeats,
            "max_k": self.max_k,
            "max_swaps": self.max_swaps,
            "main": {k: round(v, 4) for k, v in self.main.items()},
            "delete_one": self.delete_one,
            "delete_k": self.delete_k,
            "swap_k": self.swap_k,
            "importance": {name: self.importance(name) for name in self.delete_one},
            "draws": self.draws,
        }


def _summary(values: list[float]) -> dict[str, float]:
    return {k: round(v, 4) for k, v in summarize(values).items()}


def robustness(
    models: Mapping[str, ResidualNet],
    images: Tensor,
    labels: Tensor,
    *,
    bn: str = "main",
    calib_images: Tensor | None = None,
    max_k: int = 4,
    repeats: int = 10,
    max_swap_pairs: int | None = None,
    seed: int = 0,
    progress: Progress = None,
    should_stop: ShouldStop = None,
    partial: Partial = None,
) -> RobustnessReport:
    """Delete-one, delete-k and swap-k accuracies for each model on the same seeded draws.

    ``max_swap_pairs`` defaults to ``min(max_k, max_swaps(layout))``; asking for more
    deletions or swaps than the network has is a ``ValueError``.
    """
    check_same_architecture(models)
    layout = next(iter(models.values())).layout
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    n_blocks = len(deletable_blocks(layout))
    if not 1 <= max_k <= n_blocks:
        raise ValueError(
            f"cannot delete k={max_k} blocks: this network has {n_blocks} deletable blocks (k must be 1..{n_blocks})"
        )
    most_swaps = max_swaps(layout)
    if max_swap_pairs is None:
        max_swap_pairs = min(max_k, most_swaps)
    elif not 0 <= max_swap_pairs <= most_swaps:
        raise ValueError(
            f"cannot swap k={max_swap_pairs} pairs: this network allows at most {most_swaps} disjoint swaps of "
            "same-shape blocks inside a stage"
        )
    full = layout.full_plan()
    one = [full.delete(b) for b in deletable_blocks(layout)]
    deletions = {k: draw_deletions(layout, k, repeats, seed) for k in range(1, max_k + 1)}
    swaps = {k: draw_swaps(layout, k, repeats, seed) for k in range(1, max_swap_pairs + 1)}
    plans = [full, *one, *(p for d in deletions.values() for p, _ in d), *(p for d in swaps.values() for p, _ in d)]

    report = RobustnessReport(bn=bn, n_images=int(len(labels)),
                              calib_images=0 if calib_images is None or bn == "main" else int(len(calib_images)),
                              seed=seed, repeats=repeats, max_k=max_k, max_swaps=max_swap_pairs)
    report.draws = {
        "delete_k": [{"k": k, "blocks": [c for _, c in d], "plans": [str(p) for p, _ in d]}
                     for k, d in deletions.items()],
        "swap_k": [{"k": k, "pairs": [[list(pair) for pair in c] for _, c in d], "plans": [str(p) for p, _ in d]}
                   for k, d in swaps.items()],
    }
    steps = Steps(len(plans) * len(models), progress, should_stop)
    for m, (name, model) in enumerate(models.items()):
        steps.check()
        result = tree_sweep(model, plans, images, labels, bn=bn, calib_images=calib_images,
                            progress=steps.sub(m * len(plans)), should_stop=should_stop)
        if len(result.results) < len(plans):
            raise ExperimentCancelled("robustness analysis cancelled")
        acc = {r.plan: r.accuracy for r in result.results}
        main = acc[full]
        report.main[name] = main
        report.delete_one[name] = [
            {"block": b, "accuracy": round(acc[p], 4), "drop": round(main - acc[p], 4)}
            for b, p in zip(deletable_blocks(layout), one)
        ]
        report.delete_k[name] = [{"k": k, **_summary([acc[p] for p, _ in d])} for k, d in deletions.items()]
        report.swap_k[name] = [{"k": k, **_summary([acc[p] for p, _ in d])} for k, d in swaps.items()]
        if partial is not None and m + 1 < len(models):
            partial(copy.deepcopy(report.to_dict()))  # a snapshot: the worker keeps filling its dicts
    return report


def delete_one_accuracies(
    model: ResidualNet,
    images: Tensor,
    labels: Tensor,
    *,
    bn: str = "main",
    calib_images: Tensor | None = None,
    progress: Progress = None,
    should_stop: ShouldStop = None,
) -> tuple[float, list[float]]:
    """The main net's accuracy and, per block, the accuracy with that block alone deleted."""
    layout = model.layout
    full = layout.full_plan()
    plans = [full, *(full.delete(b) for b in deletable_blocks(layout))]
    result = tree_sweep(model, plans, images, labels, bn=bn, calib_images=calib_images,
                        progress=progress, should_stop=should_stop)
    if len(result.results) < len(plans):
        raise ExperimentCancelled("block importance cancelled")
    return result.results[0].accuracy, [r.accuracy for r in result.results[1:]]


def block_importance(
    model: ResidualNet,
    images: Tensor,
    labels: Tensor,
    *,
    bn: str = "main",
    calib_images: Tensor | None = None,
    progress: Progress = None,
    should_stop: ShouldStop = None,
) -> list[float]:
    """Per block, the accuracy drop in points when that block alone is deleted from the main net."""
    main, without = delete_one_accuracies(model, images, labels, bn=bn, calib_images=calib_images,
                                          progress=progress, should_stop=should_stop)
    return [main - a for a in without]
