"""Spatial Attention Mechanism, SAM (paper idea 2; after FGD, Yang et al., CVPR 2022).

Teacher spatial attention on level l, for T_l (B, C, H, W):

    m(h,w)   = mean_c |T_l(c,h,w)|,   A_T(h,w) = H*W * softmax_hw( m(h,w) / (mean_hw m * tau) )   (mean 1 over positions)

The channel-mean magnitude is divided by its spatial mean, so the attention's sharpness does not depend on the
activation scale of the teacher's model family (scaling T leaves A_T unchanged).

Ground-truth foreground F_l(h,w) in {0,1}: grid cells whose centres fall inside a box, plus the cell containing each
box centre (so boxes smaller than the stride never vanish). With `sam_fg=teacher`, F_l is instead the teacher's own
soft foreground: its highest class probability at each position. The SAM weight used by the feature losses is

    w_l = A_T * (F_l + bg * (1 - F_l))        (`sam_attention=False`: w_l = F_l + bg * (1 - F_l), A_T left out)

and the attention-transfer term makes the student's own map (computed the same way from its channel-aligned features)
match the teacher's:  L_sam = mean_l mean_hw |A_S - A_T|.
"""

from __future__ import annotations

import torch
from torch import nn

from .connector import LevelConnector
from .registry import KDLoss, register


def spatial_attention(x: torch.Tensor, temp: float) -> torch.Tensor:
    """(B, C, H, W) -> (B, 1, H, W) attention: H*W * softmax over positions of the channel-mean magnitude, relative to
    its spatial mean, / temp. Invariant to the scale of x."""
    b, _, h, w = x.shape
    m = x.float().abs().mean(1).view(b, -1)
    a = m / (m.mean(1, keepdim=True).clamp_min(1e-12) * temp)
    return (h * w * a.softmax(1)).view(b, 1, h, w)


def foreground_maps(batch: dict, shapes: list[tuple[int, int]], batch_size: int) -> list[torch.Tensor]:
    """Binary (B, 1, H, W) ground-truth masks per level from batch['bboxes'] (normalised xywh) and batch['batch_idx']."""
    boxes, bidx = batch["bboxes"].float(), batch["batch_idx"].long()
    device = boxes.device
    out = []
    for h, w in shapes:
        mask = torch.zeros(batch_size, h * w, device=device)
        if len(boxes):
            ys = (torch.arange(h, device=device) + 0.5) / h
            xs = (torch.arange(w, device=device) + 0.5) / w
            cy, cx = torch.meshgrid(ys, xs, indexing="ij")
            x1, y1 = boxes[:, 0:1] - boxes[:, 2:3] / 2, boxes[:, 1:2] - boxes[:, 3:4] / 2
            x2, y2 = boxes[:, 0:1] + boxes[:, 2:3] / 2, boxes[:, 1:2] + boxes[:, 3:4] / 2
            cx, cy = cx.reshape(1, -1), cy.reshape(1, -1)
            inside = ((cx >= x1) & (cx <= x2) & (cy >= y1) & (cy <= y2)).float()  # (N, H*W)
            mask.index_add_(0, bidx, inside)
            centre = (boxes[:, 1] * h).long().clamp(0, h - 1) * w + (boxes[:, 0] * w).long().clamp(0, w - 1)
            mask[bidx, centre] = 1.0
        out.append(mask.clamp_(max=1.0).view(batch_size, 1, h, w))
    return out


def teacher_foreground(scores: torch.Tensor, shapes: list[tuple[int, int]]) -> list[torch.Tensor]:
    """Soft foreground per level from the teacher's class logits (B, nc, A), anchors ordered level by level: the
    highest class probability at each position, one (B, 1, H, W) map in [0, 1] per level (the weighting of
    Ultralytics' built-in distillation)."""
    prob = scores.detach().float().sigmoid().amax(1)  # (B, A)
    parts = prob.split([h * w for h, w in shapes], dim=1)
    return [p.view(-1, 1, h, w) for p, (h, w) in zip(parts, shapes)]


def spatial_weights(t_attention: list | None, fg_maps: list, bg: float) -> list[torch.Tensor]:
    """SAM weights w_l = A_T * (F + bg * (1 - F)) from teacher attention maps (None: foreground only, A_T = 1), one
    (B, 1, H, W) map per level."""
    if t_attention is None:
        return [f + bg * (1 - f) for f in fg_maps]
    return [a * (f + bg * (1 - f)) for a, f in zip(t_attention, fg_maps)]


@register("paper")
class SpatialAttention(KDLoss):
    """Attention transfer: student spatial attention (after 1x1 channel alignment) -> teacher spatial attention.
    Its keys also drive the SAM weighting of the feature losses (`KDContext.feature_weights`)."""

    name, columns, order = "sam", {"sam_loss": "sam"}, 20
    # measured defaults: the weights are the teacher's foreground alone (A_T and the transfer term lowered the score)
    defaults = {"sam": 0.0, "sam_weighting": True, "sam_attention": False, "sam_temp": 0.5, "sam_bg": 0.0,
                "sam_fg": "teacher"}
    choices, positive = {"sam_fg": ("gt", "teacher")}, ("sam_temp",)

    def __init__(self, s_channels: list[int], t_channels: list[int], temp: float = 0.5):
        super().__init__()
        self.temp = temp
        self.align = LevelConnector(s_channels, t_channels)

    @classmethod
    def build(cls, cfg, pair):
        return cls(pair.s_channels, pair.t_channels, cfg.sam_temp)

    def compute(self, ctx):
        return {"sam_loss": self(ctx.student.feats, ctx.t_feats, ctx.attention())}

    def forward(self, s_feats: list, t_feats: list, t_attention: list | None = None) -> torch.Tensor:
        """Scalar mean absolute difference between student and teacher attention maps over levels."""
        t_attention = t_attention or [spatial_attention(t, self.temp) for t in t_feats]
        losses = [(spatial_attention(self.align[l](s), self.temp) - t_attention[l]).abs().mean() for l, s in enumerate(s_feats)]
        return torch.stack(losses).mean()
