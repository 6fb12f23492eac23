"""The per-level channel connector shared by the feature losses: one 1x1 conv per detection level mapping the
student's channels to the teacher's, (B, Cs_l, H, W) -> (B, Ct_l, H, W)."""

from __future__ import annotations

from torch import nn

from .common import conv1x1


class LevelConnector(nn.ModuleList):
    """`connector[l](s)` aligns student level l to teacher level l (a ModuleList, so checkpoint keys are `<i>.*`)."""

    def __init__(self, s_channels, t_channels):
        super().__init__(conv1x1(cs, ct) for cs, ct in zip(s_channels, t_channels))
