"""Every number of a training, kept apart from the plots that show them (plain Python, no Qt).

The session owns one :class:`SeriesStore`; the live plots draw from it, the CSV export writes
all of it, and a session file saves and restores it (:meth:`SeriesStore.to_dict`).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["PROBE_PREFIX", "Series", "SeriesStore", "SMOOTHING"]

PROBE_PREFIX = "probe:"  # series of a probe sub-network: "probe:<plan text>"
SMOOTHING = 0.9  # default EMA weight of the smoothed loss (bias-corrected, as TensorBoard does)
ROLES = ("smallest", "random", "user")
MAX_POINTS = 200_000  # per series, when read from a file


@dataclass
class Series:
    """x as plotted (epoch or step), the value, and the optimizer step it was taken at."""

    x: list[float] = field(default_factory=list)
    y: list[float] = field(default_factory=list)
    step: list[int] = field(default_factory=list)

    def add(self, x: float, y: float, step: int) -> None:
        self.x.append(float(x))
        self.y.append(float(y))
        self.step.append(int(step))


class SeriesStore:
    """Series keyed by (run, name), plus which probe plan plays which role."""

    def __init__(self) -> None:
        self.series: dict[tuple[str, str], Series] = {}
        self.roles: dict[str, str] = {}  # probe plan text -> "smallest" | "random" | "user"
        self.random_order: list[str] = []
        self.user_plan: str | None = None
        self.epochs = 0
        self.total_steps = 0
        self._ema: dict[str, tuple[float, int]] = {}
        self.smoothing = SMOOTHING

    def add(self, run: str, name: str, x: float, y: float, step: int) -> tuple[str, str]:
        key = (run, name)
        self.series.setdefault(key, Series()).add(x, y, step)
        return key

    def smoothed(self, run: str, value: float) -> float:
        s, n = self._ema.get(run, (0.0, 0))
        b = self.smoothing
        s, n = b * s + (1.0 - b) * value, n + 1
        self._ema[run] = (s, n)
        return s / (1.0 - b**n)

    def set_roles(self, smallest: str, random_plans: list[str], user: str | None) -> None:
        self.roles = {p: "random" for p in random_plans}
        self.roles[smallest] = "smallest"
        self.random_order = list(random_plans)
        if user is not None and user not in self.roles:
            self.roles[user] = "user"
        self.user_plan = user

    def clear(self) -> None:
        self.series.clear()
        self._ema.clear()
        self.roles.clear()
        self.random_order = []
        self.user_plan = None
        self.epochs = self.total_steps = 0

    def replace_with(self, other: SeriesStore) -> None:
        self.clear()
        self.series = {k: Series(list(s.x), list(s.y), list(s.step)) for k, s in other.series.items()}
        self.roles = dict(other.roles)
        self.random_order = list(other.random_order)
        self.user_plan = other.user_plan
        self.epochs, self.total_steps = other.epochs, other.total_steps

    def rows(self) -> Iterable[tuple[str, str, int, float]]:
        for (run, name), s in self.series.items():
            for step, value in zip(s.step, s.y):
                yield run, name, step, value

    def write_csv(self, path: str | Path) -> None:
        with open(path, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["run", "series", "step", "value"])
            for run, name, step, value in self.rows():
                w.writerow([run, name, step, repr(value) if math.isfinite(value) else str(value)])

    # ------------------------------------------------------------ session files
    def to_dict(self) -> dict[str, Any]:
        return {
            "series": [{"run": r, "name": n, "x": s.x, "y": [_json_float(v) for v in s.y], "step": s.step}
                       for (r, n), s in self.series.items()],
            "roles": dict(self.roles), "random_order": list(self.random_order), "user_plan": self.user_plan,
            "epochs": self.epochs, "total_steps": self.total_steps,
        }

    @classmethod
    def from_dict(cls, data: Any) -> SeriesStore:
        """Read :meth:`to_dict`'s output; ValueError naming what is malformed."""
        if not isinstance(data, dict):
            raise ValueError("training curves: expected an object")
        store = cls()
        for item in _list(data.get("series", []), "series"):
            if not isinstance(item, dict):
                raise ValueError("training curves: a series is not an object")
            run, name = _text(item.get("run"), "run"), _text(item.get("name"), "name")
            x, y, step = (_list(item.get(k), k) for k in ("x", "y", "step"))
            if not (len(x) == len(y) == len(step)) or len(x) > MAX_POINTS:
                raise ValueError(f"training curves: series {run}/{name} has uneven or too many points")
            try:
                store.series[(run, name)] = Series([float(v) for v in x], [_read_float(v) for v in y],
                                                   [int(v) for v in step])
            except (TypeError, ValueError):
                raise ValueError(f"training curves: series {run}/{name} holds a value that is not a number") from None
        roles = data.get("roles", {})
        if not isinstance(roles, dict):
            raise ValueError("training curves: roles must be an object")
        store.roles = {_text(k, "plan"): v for k, v in roles.items() if v in ROLES}
        store.random_order = [_text(p, "plan") for p in _list(data.get("random_order", []), "random_order")]
        user = data.get("user_plan")
        store.user_plan = _text(user, "user plan") if user is not None else None
        for key in ("epochs", "total_steps"):
            value = data.get(key, 0)
            setattr(store, key, int(value) if isinstance(value, int) and value >= 0 else 0)
        return store


def _list(value: Any, what: str) -> list:
    if not isinstance(value, list):
        raise ValueError(f"training curves: {what} must be a list")
    return value


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or len(value) > 1000:
        raise ValueError(f"training curves: {what} must be a short text")
    return value


def _json_float(v: float) -> float | str:
    return v if math.isfinite(v) else str(v)  # JSON has no NaN/inf


def _read_float(v: Any) -> float:
    if isinstance(v, str) and v in ("nan", "inf", "-inf"):
        return float(v)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError(v)
    return float(v)
