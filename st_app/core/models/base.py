"""The model protocol every family implements: a network that runs any plan of its layout.

A family (ResNet, DenseNet, ViT, ...) describes its forward pass as a *stem*, then a sequence
of *ops* that a plan determines (run unit ``b``; a ResNet's dropped entry block's projection;
a dense layer's zero features; a transition; a final norm), then a *head*. Everything else
is written once here on top of those ops, so the trainer, the methods, the analyses, ONNX
export and the app never name a family:

- ``forward(x, plan)`` = head(ops(stem(x))); ``forward_features`` stops before the head;
- ``forward_with_taps`` / ``forward_from_taps``: the main net's activation after every op, so
  a sub-net re-runs only the ops after the prefix it shares with the main net (exact);
- ``plan_ops`` / ``run_op`` / ``op_modules``: what the prefix-tree sweeps and the app's
  incremental accuracy cache run op by op (the state after a prefix depends on it alone);
- ``plan_parameters`` / ``plan_flops``: the size of a sub-net.

Ops must keep every BatchNorm out of ``forward_head`` (a final norm is an op), so a prefix's
re-estimated statistics never depend on what follows it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ..plan import NetLayout, SubnetPlan

__all__ = ["GRANULARITIES", "ModelConfig", "Op", "ResidualNet", "StemSummary", "count_flops"]

#: ("block", b): run unit b. Families add their own kinds ("proj", "zeros", "transition", "norm").
Op = tuple[str, int]

#: What one unit of a transformer's plan is: a whole block or each residual half.
GRANULARITIES = ("block", "half")


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a model before loading its weights.

    ``granularity`` is the plan unit of families that offer a choice (a transformer block, or
    its attention and MLP halves separately); it is written to metadata only when not "block".
    """

    arch: str
    num_classes: int = 10
    in_channels: int = 3
    image_size: int = 32
    granularity: str = "block"

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"arch": self.arch, "num_classes": self.num_classes,
                             "in_channels": self.in_channels, "image_size": self.image_size}
        if self.granularity != "block":
            d["granularity"] = self.granularity
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        try:
            granularity = str(d.get("granularity", "block"))
            if granularity not in GRANULARITIES:
                raise ValueError(f"granularity {granularity!r} is not one of {', '.join(GRANULARITIES)}")
            return cls(
                arch=str(d["arch"]),
                num_classes=int(d["num_classes"]),
                in_channels=int(d["in_channels"]),
                image_size=int(d["image_size"]),
                granularity=granularity,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"model description is incomplete or malformed: {exc}") from None


@dataclass(frozen=True)
class StemSummary:
    """The stem as the block graph labels it: output channels (a ViT: its width), kernel
    (a ViT: its patch), how much it shrinks the image, and one line of text."""

    channels: int
    kernel: int
    reduction: int
    text: str


class ResidualNet(nn.Module):
    """Base class of every family: a network whose forward accepts a :class:`SubnetPlan`.

    Subclasses set ``config``, ``layout`` and ``blocks`` (one object per plan unit, each with a
    ``branch_scale`` float that stochastic depth sets), and implement the family hooks below.
    """

    family = "base"
    config: ModelConfig
    layout: NetLayout
    blocks: Sequence[Any]

    # ---------------------------------------------------------------- family hooks
    def forward_stem(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward_head(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        """Pooling and classifier; holds no BatchNorm (a final norm is an op)."""
        raise NotImplementedError

    def _plan_ops(self, plan: SubnetPlan) -> tuple[Op, ...]:  # pragma: no cover - abstract
        raise NotImplementedError

    def run_op(self, op: Op, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def op_modules(self, op: Op) -> list[nn.Module]:  # pragma: no cover - abstract
        """Modules whose parameters and normalisation statistics ``op`` uses."""
        raise NotImplementedError

    def stem_parameters(self) -> list[nn.Parameter]:  # pragma: no cover - abstract
        raise NotImplementedError

    def head_parameters(self) -> list[nn.Parameter]:  # pragma: no cover - abstract
        raise NotImplementedError

    def total_stride(self) -> int:  # pragma: no cover - abstract
        """Input pixels one position of the last feature map spans (ResNet-50: 32, a ViT: its patch)."""
        raise NotImplementedError

    def stem_summary(self) -> StemSummary:  # pragma: no cover - abstract
        """What the block graph draws for the stem."""
        raise NotImplementedError

    def group_sizes(self) -> list[int]:  # pragma: no cover - abstract
        """Spatial side of each group's output at ``config.image_size`` (a ViT: its patch grid)."""
        raise NotImplementedError

    def architecture_key(self) -> tuple[Any, ...]:  # pragma: no cover - abstract
        """Everything about the architecture except the units per group: two nets with the
        same key differ only in depths, so the shallower one is an ordered sub-net of the other."""
        raise NotImplementedError

    def uses_running_statistics(self) -> bool:
        """False for nets without BatchNorm (a ViT's LayerNorm): both BN settings then give the same numbers."""
        return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in self.modules())

    # ------------------------------------------------------------------- plans
    def check_plan(self, plan: SubnetPlan) -> None:
        if plan.layout != self.layout:
            raise ValueError(
                f"plan {plan} was made for another network layout (depths {plan.layout.depths}, "
                f"this network has {self.layout.depths})"
            )

    def plan_ops(self, plan: SubnetPlan | None = None) -> tuple[Op, ...]:
        """The ops a plan's forward performs after the stem, in order (cached per plan)."""
        plan = plan or self.layout.full_plan()
        cache: dict[SubnetPlan, tuple[Op, ...]] = self.__dict__.setdefault("_ops_cache", {})
        ops = cache.get(plan)
        if ops is None:
            self.check_plan(plan)
            ops = cache[plan] = self._plan_ops(plan)
        return ops

    def subnet_of(self, other: ResidualNet) -> SubnetPlan | None:
        """The plan of this net that *is* ``other``'s architecture (DenseNet-121 inside 169), or None."""
        if self.family != other.family or self.architecture_key() != other.architecture_key():
            return None
        mine, theirs = self.layout.depths, other.layout.depths
        if len(mine) != len(theirs) or any(t > m for t, m in zip(theirs, mine)):
            return None
        return SubnetPlan.from_depths(self.layout, theirs)

    # ------------------------------------------------------------------ forward
    def forward_features(self, x: Tensor, plan: SubnetPlan | None = None) -> Tensor:
        x = self.forward_stem(x)
        for op in self.plan_ops(plan):
            x = self.run_op(op, x)
        return x

    def forward(self, x: Tensor, plan: SubnetPlan | None = None) -> Tensor:
        return self.forward_head(self.forward_features(x, plan))

    def forward_with_taps(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Full forward that also returns the activation after every op (``taps[0]``: the stem's).

        Ordered sub-nets (and any plan) share a prefix of ops with the main net; handing the
        taps to :meth:`forward_from_taps` re-runs only what follows it.
        """
        x = self.forward_stem(x)
        taps = [x]
        for op in self.plan_ops(None):
            x = self.run_op(op, x)
            taps.append(x)
        return self.forward_head(x), taps

    def forward_from_taps(self, taps: Sequence[Tensor], plan: SubnetPlan) -> Tensor:
        """Run ``plan`` reusing the main net's activations for the ops they share.

        Exact (same values, same gradients) whenever the taps come from the same weights,
        inputs and normalisation mode, because a shared prefix of ops computes the same function.
        """
        full, ops = self.plan_ops(None), self.plan_ops(plan)
        common = 0
        for a, b in zip(ops, full):
            if a != b:
                break
            common += 1
        x = taps[common]
        for op in ops[common:]:
            x = self.run_op(op, x)
        return self.forward_head(x)

    # ----------------------------------------------------------- sub-net sizes
    def plan_parameters(self, plan: SubnetPlan | None = None) -> int:
        """Parameters a sub-net actually uses (stem, head and the modules of its ops)."""
        params: dict[int, nn.Parameter] = {}
        for p in [*self.stem_parameters(), *self.head_parameters()]:
            params[id(p)] = p
        for op in self.plan_ops(plan):
            for m in self.op_modules(op):
                for p in m.parameters():
                    params[id(p)] = p
        return sum(p.numel() for p in params.values())

    def plan_flops(self, plan: SubnetPlan | None = None) -> int:
        """Multiply-accumulates of one image through the sub-net (convolutions, linear maps, attention)."""
        plan = plan or self.layout.full_plan()
        self.check_plan(plan)
        key = (type(self), self.config, str(plan))
        if key not in _FLOPS:
            if len(_FLOPS) >= 4096:
                _FLOPS.clear()
            _FLOPS[key] = _plan_flops(type(self), self.config, str(plan))
        return _FLOPS[key]


def _unique_modules(modules: Iterable[nn.Module]) -> list[nn.Module]:
    seen: dict[int, nn.Module] = {}
    for m in modules:
        seen.setdefault(id(m), m)
    return list(seen.values())


def count_flops(run: Callable[[], Any], modules: Iterable[nn.Module]) -> int:
    """Multiply-accumulates of ``run()`` through the convolutions, linear maps and attention
    layers among ``modules`` (one image's worth when ``run`` forwards one image)."""
    total = 0

    def hook(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        nonlocal total
        if isinstance(module, nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1]
            total += output[0].numel() * (module.in_channels // module.groups) * k
        elif isinstance(module, nn.Linear):
            total += module.in_features * module.out_features * (output.numel() // output.shape[-1])
        elif isinstance(module, nn.MultiheadAttention):
            # in-projections, scores, weighted sum and out-projection of one sequence
            tokens, dim = inputs[0].shape[-2], module.embed_dim
            total += 4 * tokens * dim * dim + 2 * tokens * tokens * dim

    kinds = (nn.Conv2d, nn.Linear, nn.MultiheadAttention)
    handles = [m.register_forward_hook(hook) for m in _unique_modules(modules) if isinstance(m, kinds)]
    try:
        with torch.no_grad():
            run()
    finally:
        for h in handles:
            h.remove()
    return total


_FLOPS: dict[tuple[type[ResidualNet], ModelConfig, str], int] = {}


def _plan_flops(cls: type[ResidualNet], config: ModelConfig, plan_text: str) -> int:
    """FLOPs of a plan from shapes alone: a weightless copy of the model runs on the ``meta``
    device (nothing is computed or allocated, so a ViT-B costs as little as a resnet20)."""
    with torch.device("meta"):
        model = cls(config)
    model.eval()
    plan = SubnetPlan.parse(plan_text, model.layout)
    x = torch.zeros(1, config.in_channels, config.image_size, config.image_size, device="meta")
    # an attention layer's out-projection is counted with it: its forward never calls out_proj
    return count_flops(lambda: model(x, plan), model.modules())
