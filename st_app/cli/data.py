"""The data set a checkpoint was trained on, opened for ``eval`` and ``analyze``."""

from __future__ import annotations

import argparse
from typing import Any


def checkpoint_data(args: argparse.Namespace, meta: dict[str, Any]) -> Any:
    """The checkpoint's data set, opened as it was trained (in memory, or streamed from disk).

    A path the checkpoint records is never used on its own: ``--data-dir`` or ``--dataset`` says
    where the data is (:func:`~st_app.core.meta_schema.recorded_dataset`).
    """
    from ..core.data import StreamSpec, open_dataset
    from ..core.meta_schema import recorded_dataset

    name, data_dir = recorded_dataset(meta, args.dataset, args.data_dir)
    config: dict[str, Any] = meta["config"] if isinstance(meta.get("config"), dict) else {}
    spec = StreamSpec(val_resize=config.get("val_resize"), val_crop=config.get("val_crop"),
                      workers=int(config.get("data_workers", 4)))
    return open_dataset(name, data_dir, image_size=config.get("image_size"), in_memory="auto", stream=spec)
