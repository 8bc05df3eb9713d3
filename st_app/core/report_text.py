"""How report numbers read as text, shared by the CLI, the app and the README (no torch here,
so the app's widgets can use it before torch is imported)."""

from __future__ import annotations

import math

__all__ = ["format_points_lost"]


def format_points_lost(drop: float) -> str:
    """Accuracy lost when a block is deleted, in points: ``27.5`` (lost), ``-0.6`` (deleting it helped).

    The one sign convention of block importance: the app's block graph, its legend, the charts and
    these summaries all show points *lost*.
    """
    if not math.isfinite(drop):
        return "n/a"
    if abs(drop) < 0.05:
        return "0.0"
    return f"{drop:.1f}"
