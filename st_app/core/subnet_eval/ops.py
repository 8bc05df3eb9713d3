"""A plan as a chain of block-level operations, and the one BN reset for recalibration.

``ResidualNet.forward(x, plan)`` runs the stem, then per stage the projection of a dropped
shape-changing entry block (if any) and the running blocks in plan order, then the head.
Spelling that chain out as *ops* lets the prefix sweep and the app's incremental evaluator
cache and share the activations (and re-estimated BN statistics) of common prefixes.
"""

from __future__ import annotations

from collections.abc import Iterable

from torch import Tensor, nn

from ..models import ResidualNet
from ..plan import SubnetPlan

__all__ = ["Op", "bn_layers", "op_bn_layers", "plan_ops", "run_op", "start_recalibration"]

Op = tuple[str, int]  # ("block", b): run block b; ("proj", b): dropped entry block b, projection only


def bn_layers(module: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """Every BatchNorm layer inside ``module``."""
    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def start_recalibration(layers: Iterable[nn.modules.batchnorm._BatchNorm]) -> None:
    """Forget the running statistics and average the next batches cumulatively (``momentum=None``).

    The one place this rule lives: ``evaluate.recalibrate_bn``, the prefix sweep and the app's
    incremental evaluator all re-estimate statistics this way, so their numbers agree exactly.
    """
    for m in layers:
        m.reset_running_stats()
        m.momentum = None


def plan_ops(model: ResidualNet, plan: SubnetPlan) -> tuple[Op, ...]:
    """The block-level operations a plan's forward performs, in order (after the stem)."""
    ops: list[Op] = []
    for s, blocks in enumerate(plan.stages):
        entry = model.layout.stages[s][0]
        if entry not in blocks and model.blocks[entry].downsample is not None:
            ops.append(("proj", entry))
        ops.extend(("block", b) for b in blocks)
    return tuple(ops)


def op_bn_layers(model: ResidualNet, op: Op | None) -> list[nn.modules.batchnorm._BatchNorm]:
    """BN layers whose statistics an op's forward uses (None: the stem)."""
    if op is None:
        return bn_layers(model.bn1)
    if op[0] == "proj":
        return bn_layers(model.blocks[op[1]].downsample)  # type: ignore[arg-type]
    return bn_layers(model.blocks[op[1]])


def run_op(model: ResidualNet, op: Op | None, x: Tensor) -> Tensor:
    """One operation of a plan's forward (None: the stem), as ``ResidualNet.forward`` runs it."""
    if op is None:
        return model.forward_stem(x)
    kind, b = op
    return model.blocks[b](x, run_branch=(kind == "block"))
