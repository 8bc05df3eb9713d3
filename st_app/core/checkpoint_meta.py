"""One reader of a checkpoint's metadata: which method trained it, on which data, how long.

Run folders written by different versions keep these facts in different places (``config``
of a Trainer run, or top-level ``method`` / ``dataset`` records of older and foreign files).
Every front end asks here instead of digging through the dict itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["RunInfo", "run_info"]


@dataclass(frozen=True)
class RunInfo:
    """The facts about a run that the app, the CLI and the analyses need."""

    method: str  # "ct", "st", ...; "" when unknown
    dataset: str | None
    data_dir: str | None
    image_size: int | None
    epoch: int | None
    arch: str | None

    @property
    def is_common_training(self) -> bool:
        """True for CT and for runs that name no method (a plain state_dict)."""
        return self.method.lower() in ("", "ct")


def _record(meta: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = meta.get(key)
    return value if isinstance(value, Mapping) else {}


def run_info(meta: Mapping[str, Any] | None) -> RunInfo:
    """Read a checkpoint's ``meta`` dict (``Checkpoint.meta``) into a :class:`RunInfo`."""
    meta = meta or {}
    cfg = _record(meta, "config")
    method = cfg.get("method") or _record(meta, "method").get("name") or (
        meta.get("method") if isinstance(meta.get("method"), str) else "")
    dataset = cfg.get("dataset") or _record(meta, "dataset").get("name") or (
        meta.get("dataset") if isinstance(meta.get("dataset"), str) else None)
    image_size = cfg.get("image_size")
    epoch = meta.get("epoch")
    arch = cfg.get("model") or _record(meta, "model").get("arch")
    return RunInfo(
        method=str(method or ""),
        dataset=str(dataset) if dataset else None,
        data_dir=str(cfg["data_dir"]) if cfg.get("data_dir") else None,
        image_size=int(image_size) if isinstance(image_size, int) else None,
        epoch=int(epoch) if isinstance(epoch, int) else None,
        arch=str(arch) if arch else None,
    )
