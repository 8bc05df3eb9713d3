"""Training: the one ``Trainer`` loop shared by the command line, the app and the analyses."""

from __future__ import annotations

from .config import (
    DEVICE_NAME,
    TrainConfig,
    TrainControl,
    TrainEvents,
    TrainingError,
    describe_devices,
    open_training_data,
    resolve_device,
)
from .recipe_options import DATA_RECIPE_FIELDS
from .trainer import Trainer

__all__ = [
    "DATA_RECIPE_FIELDS",
    "TrainConfig",
    "TrainControl",
    "TrainEvents",
    "Trainer",
    "TrainingError",
    "DEVICE_NAME",
    "describe_devices",
    "open_training_data",
    "resolve_device",
]
