"""Path statistics of the unraveled view (paper figure 1; Veit et al. 2016).

A plan with ``n`` active branches unravels into ``2**n`` paths; ``C(n, k)`` of them pass
through exactly ``k`` branches, so path lengths are Binomial(n, 1/2): most paths are of
medium length and very long paths are rare.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..plan import SubnetPlan

__all__ = ["PathStats", "path_statistics"]


@dataclass(frozen=True)
class PathStats:
    plan: str
    n_branches: int
    counts: tuple[int, ...]  # counts[k]: paths through exactly k branches

    @property
    def num_paths(self) -> int:
        return sum(self.counts)

    @property
    def mean_length(self) -> float:
        return self.n_branches / 2.0

    @property
    def std_length(self) -> float:
        return math.sqrt(self.n_branches) / 2.0

    def fraction(self) -> list[float]:
        """Share of all paths at each length (the binomial distribution)."""
        total = self.num_paths
        return [c / total for c in self.counts]

    def share_within(self, low: int, high: int) -> float:
        """Share of paths whose length is in ``[low, high]``."""
        return sum(self.counts[max(0, low) : min(self.n_branches, high) + 1]) / self.num_paths

    def to_dict(self) -> dict[str, Any]:
        return {
            "plan": self.plan,
            "n_branches": self.n_branches,
            "num_paths": self.num_paths,
            "mean_length": self.mean_length,
            "std_length": self.std_length,
            "by_length": [{"length": k, "paths": c} for k, c in enumerate(self.counts)],
        }


def path_statistics(plan: SubnetPlan) -> PathStats:
    """Number of unraveled paths by length for ``plan`` (wraps ``plan.paths_by_length``)."""
    return PathStats(plan=str(plan), n_branches=plan.num_branches, counts=tuple(plan.paths_by_length()))
