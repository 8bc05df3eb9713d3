"""The network as a training method sees it: autocast around forwards, DDP around the net.

Methods call ``model(x, plan)``, ``model.forward_with_taps(x)`` and friends. Handing them a
``StepModel`` instead of the bare network keeps every method unaware of precision and of
data parallelism:

- each forward runs under the run's autocast, and logits come back as float32, so losses and
  their backward passes run outside autocast in full precision (as PyTorch's AMP recipe says);
- under ``torchrun`` every forward that starts from the input goes through the one
  ``DistributedDataParallel`` wrapper, so DDP sees which parameters a sub-net used and
  averages gradients in the backward passes. ``forward_from_taps`` continues a forward that
  already went through DDP (ST's prefix sharing, one backward), so it calls the network
  directly: one DDP forward per backward, as DDP requires;
- every backward synchronises gradients, also in the paper's loop (one backward for the main
  net, one per sub-net). ``DDP.no_sync`` on all but the last would save those all-reduces,
  but DDP leaves the gradient of a parameter the synchronising backward did not use
  untouched, so the blocks a sub-net drops would keep their un-averaged main-net gradient
  (tests/test_distributed.py measured a 2e-3 weight difference that way).

Anything else (``layout``, ``blocks``, ``config``, ``train()``) is the network's own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor, nn

from ..precision import Precision

__all__ = ["DispatchModule", "StepModel"]

# entry points whose first output is the logits (returned as float32)
_LOGIT_ENTRIES = frozenset({"forward", "forward_head", "forward_from_taps", "forward_with_taps"})
# entry points that start from the input image and so go through DDP
_DDP_ENTRIES = frozenset({"forward", "forward_with_taps", "forward_features", "forward_stem"})
_ENTRIES = _LOGIT_ENTRIES | _DDP_ENTRIES | {"forward_stage"}


class DispatchModule(nn.Module):
    """What DDP wraps: one ``forward(entry, ...)`` that runs any entry point of the network."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, entry: str, *args: Any, **kwargs: Any) -> Any:
        return getattr(self.net, entry)(*args, **kwargs)


def _float_logits(entry: str, out: Any) -> Any:
    if entry not in _LOGIT_ENTRIES:
        return out
    if isinstance(out, tuple):
        return (out[0].float(), *out[1:])
    return out.float() if isinstance(out, Tensor) else out


class StepModel:
    """A proxy of the network for ``Method.step`` (see the module docstring)."""

    def __init__(self, net: nn.Module, precision: Precision, ddp: nn.Module | None = None) -> None:
        self._net = net
        self._precision = precision
        self._ddp = ddp

    @property
    def net(self) -> nn.Module:
        return self._net

    def _run(self, entry: str, *args: Any, **kwargs: Any) -> Any:
        with self._precision.autocast():
            if self._ddp is not None and entry in _DDP_ENTRIES:
                out = self._ddp(entry, *args, **kwargs)
            else:
                out = getattr(self._net, entry)(*args, **kwargs)
        return _float_logits(entry, out)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._run("forward", *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        if name in _ENTRIES:
            run: Callable[..., Any] = lambda *a, **k: self._run(name, *a, **k)
            return run
        return getattr(self._net, name)
