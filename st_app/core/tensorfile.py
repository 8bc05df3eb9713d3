"""safetensors bytes with a checksum of their tensor data, so a flipped byte is reported.

safetensors checks the header and the offsets but not the values: a flipped bit in a weight
loads silently. Every file we write carries ``st_app_sha256``, the sha256 of its data section
(everything after the header), in the header metadata; reading recomputes it. Files without
the key (older runs, other tools) load as before.
"""

from __future__ import annotations

import hashlib
import struct
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

__all__ = ["CHECKSUM_KEY", "TensorFileError", "decode", "encode", "metadata"]

CHECKSUM_KEY = "st_app_sha256"


class TensorFileError(ValueError):
    """Unreadable (``damaged=False``) or checksum-failing (``damaged=True``) tensor bytes.

    The message is the reason only; the caller adds the file name.
    """

    def __init__(self, reason: str, damaged: bool = False) -> None:
        super().__init__(reason)
        self.damaged = damaged


def _header_length(data: bytes) -> int:
    return int(struct.unpack("<Q", data[:8])[0])


def _header(data: bytes) -> dict[str, Any]:
    import json

    if len(data) < 8:
        raise TensorFileError("shorter than a safetensors header")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise TensorFileError("the header runs past the end of the file")
    try:
        header = json.loads(data[8 : 8 + n])
    except ValueError:
        raise TensorFileError("the header is not valid JSON") from None
    if not isinstance(header, dict):
        raise TensorFileError("the header is not a JSON object")
    return header


def encode(tensors: dict[str, torch.Tensor], meta: dict[str, str] | None = None) -> bytes:
    """safetensors bytes of ``tensors`` with ``meta`` and the data checksum in the header.

    Serialised once with a placeholder of the digest's length, then the placeholder is
    replaced in the header: the header keeps its length, so no offset moves.
    """
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    placeholder = "0" * 64
    raw = st_save(tensors, metadata={**(meta or {}), CHECKSUM_KEY: placeholder})
    (n,) = struct.unpack("<Q", raw[:8])
    digest = hashlib.sha256(memoryview(raw)[8 + n :]).hexdigest()
    key = f'"{CHECKSUM_KEY}":"{placeholder}"'.encode()
    header = raw[8 : 8 + n]
    if header.count(key) != 1:  # pragma: no cover - safetensors writes compact JSON
        raise TensorFileError("cannot place the checksum in the safetensors header")
    return raw[:8] + header.replace(key, f'"{CHECKSUM_KEY}":"{digest}"'.encode()) + memoryview(raw)[8 + n :]


def metadata(data: bytes) -> dict[str, str]:
    """The header's ``__metadata__`` (empty when there is none)."""
    meta = _header(data).get("__metadata__") or {}
    if not isinstance(meta, dict):
        raise TensorFileError("the header metadata is not a JSON object")
    return {str(k): str(v) for k, v in meta.items()}


def decode(data: bytes) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and header metadata; raises :class:`TensorFileError` if damaged."""
    meta = metadata(data)
    want = meta.get(CHECKSUM_KEY)
    if want is not None and hashlib.sha256(memoryview(data)[8 + _header_length(data) :]).hexdigest() != want:
        raise TensorFileError("its tensor data does not match the checksum in its header (flipped bytes?)", damaged=True)
    try:
        tensors = st_load(data)
    except (SafetensorError, ValueError, RuntimeError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TensorFileError(first) from None
    return tensors, meta
