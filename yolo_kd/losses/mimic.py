"""FitNets-style feature mimicking (the `mimic` peer; Romero et al., ICLR 2015): a 1x1 adapter per level and MSE
to the standardised teacher feature, L = mean_l mean (A(S_l) - std(T_l))^2."""

from __future__ import annotations

import torch
from torch import nn

from .common import conv1x1, standardize, weighted_mse


class FeatureMimic(nn.Module):
    """One-to-one adapter + MSE on the Detect-head input features."""

    def __init__(self, s_channels: list[int], t_channels: list[int]):
        super().__init__()
        self.align = nn.ModuleList(conv1x1(cs, ct) for cs, ct in zip(s_channels, t_channels))

    def forward(self, s_feats: list, t_feats: list) -> torch.Tensor:
        """Scalar loss over levels."""
        losses = [weighted_mse(self.align[l](s), standardize(t)).mean() for l, (s, t) in enumerate(zip(s_feats, t_feats))]
        return torch.stack(losses).mean()
