"""One schema check for ``meta.json`` (and the copy embedded in ``model.safetensors``).

A checkpoint may come from anyone. Before any field is used, its type and range are checked
here, so a ``config`` that is a string, ``num_classes: -1`` or ``10**12``, a NaN branch scale
or a 10**23-epoch recipe fails with one line naming the file and the field, instead of an
AttributeError three calls later or a terabyte allocation. Fields this version does not know
are kept and ignored (a newer version's run still loads). Numeric bounds come from
:mod:`st_app.core.limits`, the same table the command line enforces.

It also decides what a recorded data-set *path* may be used for: never silently
(:func:`recorded_dataset`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from .limits import LimitError, check_number

__all__ = ["MetaError", "check_meta", "check_train_config", "recorded_dataset", "resume_data_location"]


# data set names that carry a path (the folder is read from disk)
FOLDER_PREFIXES = ("imagefolder:", "imagenet:")


class MetaError(ValueError):
    """A metadata field has the wrong type or range; one line naming the source and field."""


Check = Callable[[Any, str], None]


def _fail(label: str, want: str, value: Any) -> MetaError:
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return MetaError(f"field '{label}' must be {want}, got {shown}")


def _str(max_len: int = 4096) -> Check:
    def check(v: Any, label: str) -> None:
        if not isinstance(v, str) or len(v) > max_len:
            raise _fail(label, f"text of at most {max_len} characters", v)

    return check


def _opt(inner: Check) -> Check:
    def check(v: Any, label: str) -> None:
        if v is not None:
            inner(v, label)

    return check


def _bool(v: Any, label: str) -> None:
    if not isinstance(v, bool):
        raise _fail(label, "true or false", v)


def _num(key: str) -> Check:
    def check(v: Any, label: str) -> None:
        try:
            check_number(key, v, label=f"field '{label}'")
        except LimitError as exc:
            raise MetaError(str(exc)) from None

    return check


def _count(v: Any, label: str) -> None:
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 10_000_000_000:
        raise _fail(label, "a whole number of images (0 to 10**10)", v)


def _dict(v: Any, label: str) -> None:
    if not isinstance(v, dict):
        raise _fail(label, "a JSON object", v)


def _list_of(inner: Check, max_len: int) -> Check:
    def check(v: Any, label: str) -> None:
        if not isinstance(v, list) or len(v) > max_len:
            raise _fail(label, f"a list of at most {max_len} entries", v)
        for i, item in enumerate(v):
            inner(item, f"{label}[{i}]")

    return check


def _int_in(low: int, high: int) -> Check:
    def check(v: Any, label: str) -> None:
        if isinstance(v, bool) or not isinstance(v, int) or not low <= v <= high:
            raise _fail(label, f"an integer from {low} to {high}", v)

    return check


def _obj(fields: dict[str, Check]) -> Check:
    """A JSON object whose known fields are checked; unknown ones are left alone."""

    def check(v: Any, label: str) -> None:
        _dict(v, label)
        for key, inner in fields.items():
            if key in v:
                inner(v[key], f"{label}.{key}" if label else key)

    return check


MODEL = _obj({"arch": _str(64), "num_classes": _num("num-classes"), "in_channels": _num("in-channels"),
              "image_size": _num("image-size"), "granularity": _str(16)})
CONFIG = _obj({
    "model": _str(64), "dataset": _str(), "method": _str(64), "method_options": _dict,
    "epochs": _num("epochs"), "batch_size": _num("batch-size"), "lr": _num("lr"), "momentum": _num("momentum"),
    "nesterov": _bool, "weight_decay": _num("weight-decay"), "seed": _num("seed"), "device": _str(64),
    "bn_reestimate": _opt(_bool), "bn_reestimate_images": _num("bn-reestimate-images"), "data_dir": _opt(_str()),
    "image_size": _opt(_num("image-size")),
    "precision": _str(16), "compile": _bool, "lr_scaling": _str(16), "reference_batch": _num("batch-size"),
    "sync_bn": _bool, "log_every": _int_in(0, 1_000_000), "data_in_memory": _str(16),
    "data_workers": _num("data-workers"), "val_resize": _opt(_num("image-size")), "val_crop": _opt(_num("image-size")),
    "color_jitter": _num("jitter"), "lighting": _num("jitter"), "granularity": _str(16),
    "min_lr": _num("min-lr"), "fc_init_std": _opt(_num("fc-init-std")), "recipe": _opt(_str(256)),
})
METHOD = _obj({
    "name": _str(64), "n_subnets": _num("subnets"), "kl_minus": _bool, "small_inputs": _bool,
    "min_scale": _opt(_num("min-scale")), "min_side": _opt(_num("min-side")), "share_prefix": _bool,
    "final_survival": _num("final-survival"),
    "space": _opt(_list_of(_list_of(_int_in(0, 10_000), 10_000), 64)),
    "norm_type": _str(16), "amplitude": _num("amplitude"), "norm_eps": _num("norm-eps"),
    "temperature": _num("temperature"), "kl_weight": _num("kl-weight"), "main_weight": _num("main-weight"),
    "kl_ramp": _str(16), "sampling_begin_epoch": _num("sampling-begin-epoch"), "sub_loss": _str(16),
    "same_scale_image": _bool, "sub_input": _str(16), "main_ce": _str(16), "space_name": _opt(_str(1024)),
    "aux_weight": _num("aux-weight"), "distill_weight": _num("distill-weight"), "hint_weight": _num("hint-weight"),
})
DATASET = _obj({
    "name": _str(), "num_classes": _num("num-classes"), "in_channels": _num("in-channels"),
    "image_size": _num("image-size"), "n_train": _count, "n_test": _count,
    "classes": _list_of(_str(1024), 100_000),
})
META = _obj({
    "format": _str(64), "model": MODEL, "config": CONFIG, "method": METHOD, "dataset": DATASET,
    "epoch": _num("epoch"), "metrics": _dict, "branch_scales": _list_of(_num("branch-scale"), 100_000),
    "package_version": _str(64), "torch_version": _str(64), "foreign": _bool, "st_lab": _dict,
})


def check_meta(meta: Any, source: str | Path) -> dict[str, Any]:
    """``meta`` if every known field is well-typed and in range, else one :class:`MetaError` line."""
    if not isinstance(meta, dict):
        raise MetaError(f"{source}: the metadata must be a JSON object, got {type(meta).__name__}")
    try:
        META(meta, "")
    except MetaError as exc:
        raise MetaError(f"{source}: {exc}") from None
    return meta


def check_train_config(config: dict[str, Any]) -> None:
    """The same checks on a training recipe before a run starts (the app and the CLI)."""
    try:
        CONFIG(config, "config")
    except MetaError as exc:
        raise MetaError(f"bad training setting: {exc}") from None


def recorded_dataset(meta: dict[str, Any], dataset: str | None, data_dir: str | None,
                     *, allow_recorded_paths: bool = False) -> tuple[str, str | None]:
    """The data set (name, data dir) to evaluate a checkpoint on.

    The user's ``dataset`` / ``data_dir`` win. A path recorded in the checkpoint (an image
    folder, a data dir) is used only when ``allow_recorded_paths`` (the app asked the user);
    otherwise an image folder needs ``data_dir`` (taken as the folder) and a recorded data dir
    is ignored, so a foreign checkpoint can never make us read a path it chose.
    """
    config: dict[str, Any] = meta["config"] if isinstance(meta.get("config"), dict) else {}
    ds: dict[str, Any] = meta["dataset"] if isinstance(meta.get("dataset"), dict) else {}
    if dataset:
        return dataset, data_dir
    name = ds.get("name") or config.get("dataset")
    if not name:
        raise MetaError("the checkpoint does not record its data set; pass --dataset")
    name = str(name)
    if name.lower().startswith(FOLDER_PREFIXES):
        recorded = name.partition(":")[2]
        if data_dir:
            return f"{name.partition(':')[0]}:{data_dir}", None
        if not allow_recorded_paths:
            prefix = name.partition(":")[0]
            raise MetaError(f"the checkpoint was trained on the image folder {recorded!r}; recorded paths are "
                            f"never used silently: pass --data-dir FOLDER (or --dataset {prefix}:FOLDER)")
        return name, None
    if data_dir is None and allow_recorded_paths:
        data_dir = config.get("data_dir")
    return name, data_dir


def resume_data_location(dataset: str, recorded_dir: str | None, data_dir: str | None,
                         allow_recorded_paths: bool) -> tuple[str, str | None]:
    """(dataset, data_dir) for resuming a run: ``data_dir`` if given (for an image folder, the
    folder itself); the recorded location only when allowed, else one :class:`MetaError` line."""
    folder = dataset.lower().startswith(FOLDER_PREFIXES)
    recorded = dataset.partition(":")[2] if folder else recorded_dir
    if data_dir is not None:
        return (f"{dataset.partition(':')[0]}:{data_dir}", recorded_dir) if folder else (dataset, data_dir)
    if recorded and not allow_recorded_paths:
        raise MetaError(f"it records the data location {recorded!r}; recorded paths are never used silently: "
                        f"pass --data-dir {recorded} to confirm it (or another folder)")
    return dataset, recorded_dir
