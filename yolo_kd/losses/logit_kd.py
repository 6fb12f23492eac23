"""Plain logit distillation for sigmoid class scores (the `kd` peer; Hinton et al. 2015 adapted to per-class
sigmoids): mean over all anchors and classes of tau^2 * KL(Bern(sigmoid(z^T/tau)) || Bern(sigmoid(z^S/tau)))."""

from __future__ import annotations

import torch
from torch import nn

from .common import binary_kl


class SigmoidLogitDistillation(nn.Module):
    """Dense sigmoid KD over every anchor and class."""

    def __init__(self, temp: float = 2.0):
        super().__init__()
        self.temp = temp

    def forward(self, s_scores: torch.Tensor, t_scores: torch.Tensor) -> torch.Tensor:
        """Scores (B, nc, A) logits -> scalar."""
        return binary_kl(t_scores, s_scores, self.temp).mean()
