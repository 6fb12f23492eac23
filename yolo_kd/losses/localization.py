"""Localization distillation on the box branch (beyond the abstract; LD, Zheng et al., CVPR 2022).

YOLOv8-style heads predict each box edge as a distribution over `reg_max` bins (DFL). On foreground anchors:
    L_ld = tau^2 * mean over anchors and the 4 edges of KL( softmax(d^T/tau) || softmax(d^S/tau) ).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LocalizationDistillation(nn.Module):
    """KL between teacher and student DFL edge distributions on foreground anchors."""

    def __init__(self, reg_max: int = 16, temp: float = 2.0):
        super().__init__()
        self.reg_max, self.temp = reg_max, temp

    def forward(self, s_boxes: torch.Tensor, t_boxes: torch.Tensor, fg_mask: torch.Tensor) -> torch.Tensor:
        """Boxes (B, 4*reg_max, A) raw bin logits, fg_mask (B, A) -> scalar."""
        fg = fg_mask.bool()
        if self.reg_max <= 1 or not fg.any():
            return s_boxes.sum() * 0.0
        s = s_boxes.permute(0, 2, 1)[fg].float().view(-1, self.reg_max) / self.temp  # (N*4, reg_max)
        t = t_boxes.permute(0, 2, 1)[fg].float().view(-1, self.reg_max) / self.temp
        kl = F.kl_div(F.log_softmax(s, 1), F.log_softmax(t, 1), reduction="none", log_target=True).sum(1)
        return kl.mean() * self.temp**2
