"""Channel-wise distillation (the `cwd` peer; Shu et al., ICCV 2021): each channel's activation map becomes a
distribution over positions, softmax(x / tau), and the student (after a 1x1 adapter) matches the teacher's:
L = mean_l tau^2 / C * sum_c KL(P_T^c || P_S^c), averaged over the batch."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from .connector import LevelConnector
from .registry import KDLoss, register


@register("cwd")
class ChannelWiseDistillation(KDLoss):
    """Per-channel spatial-softmax KL between aligned student and teacher features."""

    name, columns = "cwd", {"cwd_loss": "cwd"}
    defaults, positive = {"cwd": 1.0, "cwd_temp": 4.0}, ("cwd_temp",)

    def __init__(self, s_channels: list[int], t_channels: list[int], temp: float = 4.0):
        super().__init__()
        self.temp = temp
        self.align = LevelConnector(s_channels, t_channels)

    @classmethod
    def build(cls, cfg, pair):
        return cls(pair.s_channels, pair.t_channels, cfg.cwd_temp)

    def compute(self, ctx):
        return {"cwd_loss": self(ctx.student.feats, ctx.t_feats)}

    def forward(self, s_feats: list, t_feats: list) -> torch.Tensor:
        """Scalar loss over levels."""
        losses = []
        for l, (s, t) in enumerate(zip(s_feats, t_feats)):
            s = self.align[l](s).float().flatten(2) / self.temp  # (B, C, HW)
            t = t.float().flatten(2) / self.temp
            kl = F.kl_div(F.log_softmax(s, 2), F.log_softmax(t, 2), reduction="none", log_target=True).sum(2)
            losses.append(kl.mean() * self.temp**2)  # mean over B and C
        return torch.stack(losses).mean()
