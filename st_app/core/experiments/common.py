"""What every analysis shares: callbacks, cancellation, checkpoint identity, checks."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..models import ResidualNet

__all__ = ["Partial", "Progress", "ShouldStop", "ExperimentCancelled", "check_same_architecture", "checkpoint_info",
           "Steps"]

#: ``progress(done, total)``: called as work finishes (the app forwards it as a Qt signal).
Progress = Callable[[int, int], None] | None
#: ``should_stop()``: polled between units of work; true cancels the analysis.
ShouldStop = Callable[[], bool] | None
#: ``partial(report_dict)``: the report so far, after each finished part (a model, a plan, a
#: method), so a front end can draw results while the rest is computed.
Partial = Callable[[dict[str, Any]], None] | None


class ExperimentCancelled(RuntimeError):
    """``should_stop()`` turned true; nothing half-done is returned."""


def check_same_architecture(models: Mapping[str, ResidualNet]) -> None:
    """Loafing comparisons need CT and ST nets of the same architecture and data shape."""
    items = list(models.items())
    if not items:
        raise ValueError("no models to analyse")
    first_name, first = items[0]
    for name, model in items[1:]:
        a, b = first.config, model.config
        if a.arch != b.arch:
            raise ValueError(
                f"the {first_name.upper()} checkpoint holds a {a.arch} but the {name.upper()} checkpoint "
                f"holds a {b.arch}; CT and ST must be the same architecture"
            )
        if first.layout != model.layout:
            raise ValueError(
                f"the {first_name.upper()} and {name.upper()} checkpoints split the {a.arch} into different plan units "
                f"(granularity {a.granularity} vs {b.granularity}); CT and ST must use the same"
            )
        if (a.num_classes, a.in_channels) != (b.num_classes, b.in_channels):
            raise ValueError(
                f"the {first_name.upper()} checkpoint ({a.in_channels} channels, {a.num_classes} classes) and "
                f"the {name.upper()} checkpoint ({b.in_channels} channels, {b.num_classes} classes) were "
                "trained on different data"
            )


def checkpoint_info(checkpoint: Any) -> dict[str, Any]:
    """Identity of a loaded checkpoint for reports: path, epoch, architecture, recipe."""
    meta = checkpoint.meta or {}
    config = meta.get("config", {})
    method = meta.get("method", {}).get("name") or config.get("method")
    return {
        "id": checkpoint.id,
        "path": str(checkpoint.path),
        "epoch": meta.get("epoch"),
        "arch": checkpoint.model.config.arch,
        "method": method,
        "seed": config.get("seed"),
        "dataset": meta.get("dataset", {}).get("name") or config.get("dataset"),
    }


class Steps:
    """Turns several sub-tasks into one ``progress(done, total)`` stream and checks cancel."""

    def __init__(self, total: int, progress: Progress = None, should_stop: ShouldStop = None) -> None:
        self.total = max(1, int(total))
        self.done = 0
        self.progress = progress
        self.should_stop = should_stop

    def check(self) -> None:
        if self.should_stop is not None and self.should_stop():
            raise ExperimentCancelled("analysis cancelled")

    def advance(self, n: int = 1) -> None:
        self.done = min(self.total, self.done + n)
        if self.progress is not None:
            self.progress(self.done, self.total)

    def sub(self, offset: int) -> Callable[[int, int], None]:
        """A ``progress`` callback for a sub-task whose units map 1:1 onto ours, from ``offset``."""

        def report(done: int, total: int) -> None:
            self.done = min(self.total, offset + done)
            if self.progress is not None:
                self.progress(self.done, self.total)

        return report
