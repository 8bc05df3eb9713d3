"""Two settings of the authors' trainer that the Trainer applies at start-up (issue 9).

- ``fc_init_std``: their classifier init, weight ~ N(0, std), bias 0 (``reset_parameters``);
- the image-file data recipe (validation resize / crop, ColorJitter, PCA lighting) acts on
  streamed images only: an in-memory set would silently ignore it, so it is refused.
"""

from __future__ import annotations

from typing import Any

import torch

from ..data import DataSource

__all__ = ["DATA_RECIPE_FIELDS", "data_recipe_problem", "init_classifier"]

DATA_RECIPE_FIELDS = ("val_resize", "val_crop", "color_jitter", "lighting")


def data_recipe_problem(config: dict[str, Any], data: DataSource) -> str | None:
    """Why the image-file recipe (the authors' ImageNet loader) cannot apply, or None: it acts
    on streamed images only, and an in-memory set would train without it."""
    used = [f for f in DATA_RECIPE_FIELDS if config.get(f)]
    if used and data.in_memory:
        return (f"{', '.join(used)} (the authors' ImageNet data recipe) act on images streamed from files; "
                f"{data.name} is held in memory and would ignore them (stream an image folder: "
                "imagenet:PATH, or imagefolder:PATH with --data-in-memory no)")
    return None


def init_classifier(model: torch.nn.Module, std: float | None) -> None:
    """The authors' classifier init: weight ~ N(0, std), bias 0 (the network's last linear layer);
    ``None`` keeps the model's own init."""
    if std is None:
        return
    linear = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
    torch.nn.init.normal_(linear.weight, 0.0, std)
    if linear.bias is not None:
        torch.nn.init.zeros_(linear.bias)
