"""Torch CPU tensors as out-of-band pickle buffers.

Torch pickles a tensor's storage in band (a ``torch.save`` blob inside the
pickle stream), so a captured tensor would be copied while packing and again in
every rank. The kernel side (:func:`reduce_tensor`, used by capture) hands the
tensor's bytes to pickle protocol 5 as one out-of-band buffer instead; the
worker side (:func:`rebuild_tensor`) wraps the payload's mapped buffer without
copying, so ranks share the pages they only read.

Stdlib-only at import: torch is imported only where a tensor is rebuilt.
"""

from __future__ import annotations

import pickle
import sys
from typing import Any

OUT_OF_BAND_FROM = 64 * 1024
"""Tensors smaller than this (bytes) keep torch's own pickling."""


def rebuild_tensor(buffer: Any, dtype: str, shape: tuple[int, ...], requires_grad: bool) -> Any:
    """A tensor over ``buffer`` (shared, not copied) with ``dtype`` and ``shape``."""
    import torch

    flat = torch.frombuffer(buffer, dtype=getattr(torch, dtype))
    tensor = flat.reshape(shape)
    return tensor.requires_grad_(requires_grad) if requires_grad else tensor


def reduce_tensor(value: Any) -> Any:
    """A protocol-5 reduction of a large dense CPU tensor, else ``NotImplemented``."""
    torch = sys.modules.get("torch")
    if torch is None or type(value) is not torch.Tensor or not _plain(torch, value):
        return NotImplemented
    if value.numel() * value.element_size() < OUT_OF_BAND_FROM:
        return NotImplemented
    try:
        raw = value.detach().contiguous().reshape(-1).view(torch.uint8).numpy()
    except (RuntimeError, TypeError):  # numpy missing, or a dtype numpy cannot view
        return NotImplemented
    dtype = str(value.dtype).removeprefix("torch.")
    arguments = (pickle.PickleBuffer(raw), dtype, tuple(value.shape), value.requires_grad)
    return rebuild_tensor, arguments


def _plain(torch: Any, value: Any) -> bool:
    """A strided CPU tensor with nothing but its data to carry."""
    return (
        value.device.type == "cpu"
        and value.layout == torch.strided
        and not value.is_quantized
        and not value.is_nested
        and not value.is_conj()
        and not value.is_neg()
        and (value.is_leaf or not value.requires_grad)
        and not getattr(value, "__dict__", None)
    )
