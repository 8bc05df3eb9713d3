"""Undoable edits: every change of the plan is one QUndoCommand holding before and after."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtGui import QUndoCommand

from st_app.core.plan import SubnetPlan

__all__ = ["PlanEditCommand"]


class PlanEditCommand(QUndoCommand):
    """Replace the current plan; undo puts the previous one back.

    The command stores whole (immutable) plans rather than the operation, so undo never has
    to invert a swap or a restore and can never fail.
    """

    def __init__(self, apply: Callable[[SubnetPlan], None], before: SubnetPlan, after: SubnetPlan,
                 text: str) -> None:
        super().__init__(text)
        self._apply = apply
        self.before = before
        self.after = after

    def redo(self) -> None:
        self._apply(self.after)

    def undo(self) -> None:
        self._apply(self.before)
