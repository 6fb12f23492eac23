"""Gradient-norm clipping shared by the student and the KD modules.

Ultralytics' `BaseTrainer.optimizer_step` unscales the AMP gradients, then clips the norm of `self.model`'s gradients
to 10. Its built-in distillation wraps student and projector in one model, so the projector shares that norm. In
`KDTrainer` the KD modules (connectors, generators, FAM) sit beside the student: by default only the student is
clipped. `kd_grad_clip=joint` clips them together, as the built-in does, before Ultralytics' own clip (which then finds
the student within bounds and does nothing)."""

from __future__ import annotations

import torch

ULTRALYTICS_MAX_NORM = 10.0  # the max_norm of BaseTrainer.optimizer_step
GRAD_CLIP_MODES = ("student", "joint")


def clip_jointly(params, max_norm: float = ULTRALYTICS_MAX_NORM, scale: float | torch.Tensor = 1.0) -> torch.Tensor:
    """Rescale the gradients of `params` so that their joint L2 norm, divided by the AMP loss `scale` they still carry
    (a float, or the GradScaler's 1-element scale tensor), is at most `max_norm`. A non-finite norm (an AMP overflow)
    leaves them untouched, for the GradScaler to see and skip the step. Done on the device with fused per-tensor norms
    (no host sync, as torch's clip_grad_norm_). Returns the joint unscaled norm before clipping (0-dim)."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    if torch.is_tensor(scale):
        scale = scale.reshape(())  # the GradScaler keeps its scale as a 1-element tensor
    norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads))) / scale
    coef = (max_norm / (norm + 1e-6)).clamp(max=1.0)
    torch._foreach_mul_(grads, torch.where(torch.isfinite(norm), coef, torch.ones_like(coef)))
    return norm
