"""Localization distillation on the box branch (beyond the abstract; LD, Zheng et al., CVPR 2022).

YOLOv8-style heads predict each box edge as a distribution over `reg_max` bins (DFL). On foreground anchors:
    L_ld = tau^2 * mean over anchors and the 4 edges of KL( softmax(d^T/tau) || softmax(d^S/tau) ).
"""

from __future__ import annotations

import torch

from .common import dfl_edge_kl
from .registry import KDLoss, register


@register("paper")
class LocalizationDistillation(KDLoss):
    """KL between teacher and student DFL edge distributions on foreground anchors."""

    name, columns, order = "ld", {"ld_loss": "ld"}, 50
    defaults, positive = {"ld": 0.0, "ld_temp": 2.0}, ("ld_temp",)

    def __init__(self, reg_max: int = 16, temp: float = 2.0):
        super().__init__()
        self.reg_max, self.temp = reg_max, temp

    @classmethod
    def skip_reason(cls, column, pair):
        if not pair.same_reg_max or pair.reg_max <= 1:
            return "LD needs the same DFL bins (reg_max > 1) in teacher and student"
        return None

    @classmethod
    def build(cls, cfg, pair):
        return cls(pair.reg_max, cfg.ld_temp)

    def compute(self, ctx):
        return {"ld_loss": self(ctx.student.boxes, ctx.teacher.boxes.detach(), ctx.fg_mask)}

    def forward(self, s_boxes: torch.Tensor, t_boxes: torch.Tensor, fg_mask: torch.Tensor) -> torch.Tensor:
        """Boxes (B, 4*reg_max, A) raw bin logits, fg_mask (B, A) -> scalar. A masked mean over foreground anchors
        (no boolean indexing: no host synchronisation)."""
        kl = dfl_edge_kl(s_boxes, t_boxes, self.reg_max, self.temp)  # (B, A)
        fg = fg_mask.float()
        return (kl * fg).sum() / fg.sum().clamp_min(1) * self.temp**2
