"""FitNets-style feature mimicking (the `mimic` peer; Romero et al., ICLR 2015): a 1x1 adapter per level and MSE
to the standardised teacher feature, L = mean_l mean (A(S_l) - std(T_l))^2."""

from __future__ import annotations

import torch
from .common import standardize, weighted_mse
from .connector import LevelConnector
from .registry import KDLoss, register


@register("mimic")
class FeatureMimic(KDLoss):
    """One-to-one adapter + MSE on the Detect-head input features."""

    name, columns, defaults = "mimic", {"mimic_loss": "mimic"}, {"mimic": 1.0}

    def __init__(self, s_channels: list[int], t_channels: list[int]):
        super().__init__()
        self.align = LevelConnector(s_channels, t_channels)

    @classmethod
    def build(cls, cfg, pair):
        return cls(pair.s_channels, pair.t_channels)

    def compute(self, ctx):
        return {"mimic_loss": self(ctx.student.feats, ctx.t_feats)}

    def forward(self, s_feats: list, t_feats: list) -> torch.Tensor:
        """Scalar loss over levels."""
        losses = [weighted_mse(self.align[l](s), standardize(t)).mean() for l, (s, t) in enumerate(zip(s_feats, t_feats))]
        return torch.stack(losses).mean()
