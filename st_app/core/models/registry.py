"""What a model family registers: its names, a builder, and how it recognises its weights.

Adding a family is one module under ``models/`` that defines a :class:`ResidualNet` subclass
and a :class:`Family`, plus one line in ``models/__init__.py`` listing it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from torch import Tensor

from .base import ModelConfig, ResidualNet

__all__ = ["Family", "StateDict", "UnknownLayout"]

StateDict = Mapping[str, Tensor]


class UnknownLayout(ValueError):
    """A state_dict has this family's module names but a shape no registered model has."""


def _same(state: dict[str, Tensor]) -> dict[str, Tensor]:
    return state


@dataclass(frozen=True)
class Family:
    """One model family.

    - ``archs``: the registered names, in the order pickers list them;
    - ``build(config)``: the model (``config.arch`` is one this family ``accepts``);
    - ``recognise(state, image_size, arch)``: the config whose model holds exactly these
      tensors, ``None`` when the names are not this family's, :class:`UnknownLayout` when
      they are but no model fits (``arch`` is the user's hint, e.g. ``--model``);
    - ``adapt_state``: renames older spellings of the family's tensor names (applied first);
    - ``granularities``: the plan units a user may choose (``ModelConfig.granularity``).
    """

    name: str
    title: str
    archs: tuple[str, ...]
    build: Callable[[ModelConfig], ResidualNet]
    recognise: Callable[[StateDict, int | None, str | None], ModelConfig | None]
    describe: Callable[[str], str]
    accepts: Callable[[str], bool] | None = None
    adapt_state: Callable[[dict[str, Tensor]], dict[str, Tensor]] = field(default=_same)
    granularities: tuple[str, ...] = ("block",)

    def builds(self, arch: str) -> bool:
        return arch in self.archs or (self.accepts is not None and self.accepts(arch))
