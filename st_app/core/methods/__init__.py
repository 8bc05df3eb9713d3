"""Training schemes as small strategy objects: CT, ST, ST++ and stochastic depth.

Each method does the forward/backward work of one batch and leaves the optimizer step to the
Trainer, so every scheme shares the same loop, schedule, checkpoints and events. One module
per scheme; this registry builds them by name.
"""

from __future__ import annotations

from typing import Any

from .base import Method, kl_to_teacher, total_stride
from .ct import CommonTraining
from .sd import StochasticDepth
from .st import STPP_MIN_FEATURE_SIDE, STPP_MIN_SCALE, StimulativeTraining

__all__ = [
    "METHODS",
    "Method",
    "CommonTraining",
    "StimulativeTraining",
    "StochasticDepth",
    "STPP_MIN_SCALE",
    "STPP_MIN_FEATURE_SIDE",
    "kl_to_teacher",
    "make_method",
    "method_from_description",
    "total_stride",
]


METHODS = ("ct", "st", "stpp", "sd")


def make_method(name: str, **options: Any) -> Method:
    """Build a method by name; unknown options are an error, not silently ignored."""
    key = name.lower().replace("+", "p")
    opts = {k: v for k, v in options.items() if v is not None}
    try:
        if key == "ct":
            if opts:
                raise TypeError(f"unexpected options {sorted(opts)}")
            return CommonTraining()
        if key == "st":
            return StimulativeTraining(name="st", **opts)
        if key in ("stpp", "stplusplus"):
            defaults: dict[str, Any] = {"n_subnets": 6, "kl_minus": True, "small_inputs": True}
            defaults.update(opts)
            return StimulativeTraining(name="stpp", **defaults)
        if key == "sd":
            return StochasticDepth(**opts)
    except TypeError as exc:
        raise ValueError(f"bad options for method {name!r}: {exc}") from None
    raise ValueError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}")


def method_from_description(desc: dict[str, Any]) -> Method:
    opts = dict(desc)
    name = str(opts.pop("name", "ct"))
    if name in ("st", "stpp"):
        return StimulativeTraining(name=name, **opts)
    return make_method(name, **opts)
