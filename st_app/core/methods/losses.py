"""Logit normalisations and sub-net losses of the authors' ST / ST++ code, one function each.

Written from the facts of their ``train.py`` (github Sunshine-Ye/NIPS22-ST), not copied:

- normalisation (``--norm_kd_type``), applied to the main net's logits *and* the sub-nets':
  ``layernorm`` (their ``default``): ``A * (z - mean) / sqrt(var_biased + eps)`` over classes;
  ``v1``: the same without ``A`` (the KD softmaxes are then scaled by the teacher's per-row std,
  see :func:`adaptive_amplitude`); ``v2``: ``A * z / max(||z||_2, eps)``. Their eps is 1e-7.
- sub-net loss (``--st_loss``): ``kl`` (their ``default``): ``T^2 * KL(softmax(t a / T) ||
  softmax(s a / T))``, summed over classes and divided by the batch; ``soft-ce`` (``CE``):
  cross-entropy to ``softmax(t)`` (no T, no a); ``label-ce`` (``CE_target``): cross-entropy to
  the labels; ``mse`` (``MSE``): mean squared error of the two softmaxes over batch x classes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "NORM_TYPES",
    "SUB_LOSSES",
    "adaptive_amplitude",
    "kl_to_teacher",
    "normalise_logits",
    "subnet_loss",
]

NORM_TYPES = ("layernorm", "v1", "v2")
SUB_LOSSES = ("kl", "soft-ce", "label-ce", "mse")


def normalise_logits(z: Tensor, kind: str = "layernorm", amplitude: float = 1.0, eps: float = 1e-7) -> Tensor:
    """ST++'s "KL-" normalisation of a batch of logit rows; gradients flow through it."""
    if kind == "layernorm":
        return F.layer_norm(z, z.shape[-1:], None, None, eps) * amplitude
    if kind == "v1":
        return F.layer_norm(z, z.shape[-1:], None, None, eps)
    if kind == "v2":
        return F.normalize(z, p=2.0, dim=-1, eps=eps) * amplitude
    raise ValueError(f"unknown logit normalisation {kind!r}; choose one of {', '.join(NORM_TYPES)}")


def adaptive_amplitude(teacher: Tensor, kind: str) -> Tensor | float:
    """``v1``'s "adaptive amplitude": the teacher rows' unbiased std (detached), else 1.

    On layer-normed rows this is sqrt(C / (C - 1)) for every row, close to 1; the authors
    compute it all the same, so it is kept for exactness.
    """
    if kind == "v1":
        return torch.std(teacher.detach(), dim=-1, keepdim=True)
    return 1.0


def kl_to_teacher(student: Tensor, teacher: Tensor, z_score: bool = False) -> Tensor:
    """KL(softmax(teacher) || softmax(student)), batch mean; ``z_score`` layer-norms both first."""
    if z_score:
        student = F.layer_norm(student, student.shape[-1:])
        teacher = F.layer_norm(teacher, teacher.shape[-1:])
    return F.kl_div(F.log_softmax(student, dim=-1), F.log_softmax(teacher, dim=-1), reduction="batchmean", log_target=True)


def subnet_loss(
    kind: str,
    student: Tensor,
    teacher: Tensor,
    labels: Tensor,
    *,
    temperature: float = 1.0,
    scale: Tensor | float = 1.0,
) -> Tensor:
    """One sub-net's loss against the detached (possibly normalised) main-net logits."""
    if kind == "kl":
        t = temperature
        kl = F.kl_div(F.log_softmax(student * scale / t, dim=-1), F.log_softmax(teacher * scale / t, dim=-1),
                      reduction="batchmean", log_target=True)
        return kl * (t * t)
    if kind == "soft-ce":
        return -(F.softmax(teacher, dim=-1) * F.log_softmax(student, dim=-1)).sum(dim=-1).mean()
    if kind == "label-ce":
        return F.cross_entropy(student, labels)
    if kind == "mse":
        return F.mse_loss(F.softmax(student, dim=-1), F.softmax(teacher, dim=-1))
    raise ValueError(f"unknown sub-net loss {kind!r}; choose one of {', '.join(SUB_LOSSES)}")
