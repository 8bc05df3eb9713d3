"""Training schemes as small strategy objects: table 1's seven methods.

Each method does the forward/backward work of one batch and leaves the optimizer step to the
Trainer, so every scheme shares the same loop, schedule, checkpoints and events. One module
per scheme (``ct``, ``supervision``: layersup + stagesup, ``selfdistill``, ``sd``, ``st``: ST +
ST++); ``losses`` and ``spaces`` hold the authors' loss variants and sampling spaces,
``recipes`` their presets; this registry builds methods by name.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from .base import Method, total_stride
from .ct import CommonTraining
from .losses import NORM_TYPES, SUB_LOSSES, kl_to_teacher, normalise_logits, subnet_loss
from .sd import StochasticDepth
from .selfdistill import SelfDistillation
from .spaces import NAMED_SPACES, resolve_space
from .st import (
    KL_RAMPS,
    MAIN_CE,
    STPP_MIN_FEATURE_SIDE,
    STPP_MIN_SCALE,
    SUB_INPUTS,
    StepDraws,
    StimulativeTraining,
)
from .supervision import DeepSupervision

__all__ = [
    "KL_RAMPS",
    "MAIN_CE",
    "METHODS",
    "METHOD_TITLES",
    "NAMED_SPACES",
    "NORM_TYPES",
    "STPP_DEFAULTS",
    "STPP_MIN_FEATURE_SIDE",
    "STPP_MIN_SCALE",
    "SUB_INPUTS",
    "SUB_LOSSES",
    "CommonTraining",
    "DeepSupervision",
    "Method",
    "SelfDistillation",
    "StepDraws",
    "StimulativeTraining",
    "StochasticDepth",
    "kl_to_teacher",
    "make_method",
    "method_from_description",
    "method_option_names",
    "normalise_logits",
    "resolve_space",
    "subnet_loss",
    "total_stride",
]

# table 1's order
METHODS = ("ct", "layersup", "stagesup", "selfdistill", "sd", "st", "stpp")
METHOD_TITLES = {
    "ct": "CT", "layersup": "CT + layer supervision", "stagesup": "CT + stage supervision",
    "selfdistill": "Self-distillation", "sd": "Stochastic depth", "st": "ST", "stpp": "ST++",
}
# ST++ as the authors run it (their README's last rung); every other option keeps ST's default
STPP_DEFAULTS: dict[str, Any] = {"n_subnets": 6, "kl_minus": True, "small_inputs": True, "space": "space3"}
# what a run saved before the authors' ST++ was reproduced computed (its meta.json lacks main_ce)
_BEFORE_ISSUE_9 = {"main_ce": "raw", "sub_input": "independent", "norm_eps": 1e-5}


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
            return StimulativeTraining(name="stpp", **{**STPP_DEFAULTS, **opts})
        if key == "sd":
            return StochasticDepth(**opts)
        if key in ("layersup", "stagesup"):
            return DeepSupervision(name=key, where="block" if key == "layersup" else "stage", **opts)
        if key == "selfdistill":
            return SelfDistillation(**opts)
    except TypeError as exc:
        raise ValueError(f"bad options for method {name!r}: {exc}") from None
    raise ValueError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}")


def method_option_names(name: str) -> set[str]:
    """The options ``make_method(name, ...)`` accepts (what a front end may offer for it)."""
    classes: dict[str, Any] = {"st": StimulativeTraining, "stpp": StimulativeTraining, "sd": StochasticDepth,
                               "layersup": DeepSupervision, "stagesup": DeepSupervision,
                               "selfdistill": SelfDistillation}
    key = name.lower().replace("+", "p")
    if key == "ct":
        return set()
    if key not in classes:
        raise ValueError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}")
    return {f.name for f in fields(classes[key]) if f.init} - {"name", "where"}


def method_from_description(desc: dict[str, Any]) -> Method:
    """Rebuild the method a run's ``meta.json`` describes, exactly as it trained."""
    opts = dict(desc)
    name = str(opts.pop("name", "ct"))
    if name in ("st", "stpp"):
        if "main_ce" not in opts:
            opts = {**_BEFORE_ISSUE_9, **opts}
        try:
            return StimulativeTraining(name=name, **opts)
        except TypeError as exc:
            raise ValueError(f"bad options for method {name!r}: {exc}") from None
    return make_method(name, **opts)
