"""A plan as a chain of operations, and the one BN reset for recalibration.

``ResidualNet.forward(x, plan)`` runs the stem, then the ops its family derives from the plan
(``model.plan_ops``: a ResNet's running blocks and dropped entry projections, a DenseNet's
layers, zero features and transitions, a transformer's blocks), then the head. Spelling that
chain out lets the prefix sweep and the app's incremental evaluator cache and share the
activations (and re-estimated BN statistics) of common prefixes.
"""

from __future__ import annotations

from collections.abc import Iterable

from torch import Tensor, nn

from ..models import Op, ResidualNet
from ..plan import SubnetPlan

__all__ = ["Op", "bn_layers", "op_bn_layers", "plan_ops", "run_op", "start_recalibration"]



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
    """The operations a plan's forward performs, in order (after the stem); the family defines them."""
    return model.plan_ops(plan)


def _stem_modules(model: ResidualNet) -> list[nn.Module]:
    """Modules holding the stem's parameters (its BN layers are what recalibration resets)."""
    ids = {id(p) for p in model.stem_parameters()}
    return [m for m in model.modules() if any(id(p) in ids for p in m.parameters(recurse=False))]


def op_bn_layers(model: ResidualNet, op: Op | None) -> list[nn.modules.batchnorm._BatchNorm]:
    """BN layers whose statistics an op's forward uses (None: the stem)."""
    modules = _stem_modules(model) if op is None else model.op_modules(op)
    return [m for mod in modules for m in bn_layers(mod)]


def run_op(model: ResidualNet, op: Op | None, x: Tensor) -> Tensor:
    """One operation of a plan's forward (None: the stem), as ``model.forward`` runs it."""
    if op is None:
        return model.forward_stem(x)
    return model.run_op(op, x)
