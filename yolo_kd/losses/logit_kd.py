"""Plain logit distillation for sigmoid class scores (the `kd` peer; Hinton et al. 2015 adapted to per-class
sigmoids): mean over all anchors and classes of tau^2 * KL(Bern(sigmoid(z^T/tau)) || Bern(sigmoid(z^S/tau)))."""

from __future__ import annotations

import torch
from .common import binary_kl
from .registry import KDLoss, register


@register("kd")
class SigmoidLogitDistillation(KDLoss):
    """Dense sigmoid KD over every anchor and class."""

    name, columns = "logit_kd", {"kd_loss": "logit_kd"}
    defaults, positive = {"logit_kd": 1.0, "kd_temp": 2.0}, ("kd_temp",)

    def __init__(self, temp: float = 2.0):
        super().__init__()
        self.temp = temp

    @classmethod
    def skip_reason(cls, column, pair):
        return None if pair.same_classes else "teacher and student classes differ"

    @classmethod
    def build(cls, cfg, pair):
        return cls(cfg.kd_temp)

    def compute(self, ctx):
        return {"kd_loss": self(ctx.student.scores, ctx.teacher.scores.detach())}

    def forward(self, s_scores: torch.Tensor, t_scores: torch.Tensor) -> torch.Tensor:
        """Scores (B, nc, A) logits -> scalar."""
        return binary_kl(t_scores, s_scores, self.temp).mean()
