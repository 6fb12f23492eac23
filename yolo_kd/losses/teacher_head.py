"""Teacher-head distillation (beyond the abstract; SRRL, Yang et al., ICLR 2021, adapted to dense detection heads).

The student's features S_l, projected to the teacher's channels by a projector P_l of their own (conv1x1-ReLU-conv1x1,
as FR's), go through the teacher's frozen Detect head H; the head's predictions there must match the teacher's own:

    L_th = mean_{b,a} sum_k KL(Bern(σ(z_k^T)) ‖ Bern(σ(ẑ_k)))
         + sum_{b,a} w · mean_edges KL(softmax(d^T) ‖ softmax(d̂)) / sum_{b,a} w          (DFL heads; reg_max > 1)

with ẑ, d̂ = H(P(S)) the class and DFL edge logits on the student's projected features, z^T, d^T = H(T) the teacher's,
and w the teacher's highest class probability at each anchor (for reg_max = 1 heads the box term is the weighted MSE of
the box outputs). Unlike feature imitation, which weights every channel's error alike, the error is measured through
the head that reads the features, so the channels that decide the teacher's predictions dominate. The head is frozen:
gradients reach the projector and the student only.

From scratch `th=7` is a default (the weight gives it the FR term's share of the loss at the start). Added to the
from-scratch `paper` of its day it scored +4.6 ± 5.3 points over 16 tuning seeds, ahead on 14 (docs/tune64/teacher-head.md).
With the teacher-neck term in (`tn`, the same loss one stage earlier) the 3-seed bench ablation was 0.2 points higher
without it (docs/bench-cpu/ablation-tn/), the tuning set 1.8 higher with it (docs/tune64/teacher-neck-only.md), and
over 20 bench pairs it is 0.3 higher with it, which decided (docs/bench-cpu/teacher-head-20/). Fine-tuning: 0, see
`cfg/finetune.yaml` (−0.2 ± 1.9 over 8 tuning seeds, docs/tune64/finetune-th.md).
"""

from __future__ import annotations

import torch
from torch import nn
from ultralytics.utils import LOGGER

from ..teacher import HeadOutputs
from .common import binary_kl, dfl_edge_kl, generation_block
from .feature_resampling import FeatureResampling
from .registry import KDLoss, register


@register("paper")
class TeacherHeadDistillation(KDLoss):
    """The teacher's frozen head on the student's projected features must predict what it predicts on its own."""

    name, columns, order = "th", {"th_loss": "th"}, 15
    defaults = {"th": 7.0, "th_projector": "own", "teacher_pass_share": 1.0}  # th from scratch (docs/bench-cpu/teacher-head-20/); fine-tuning 0
    choices = {"th_projector": ("own", "fr")}
    shares, positive = ("teacher_pass_share",), ("teacher_pass_share",)

    def __init__(self, s_channels: list[int], t_channels: list[int], own_projector: bool = True):
        super().__init__()
        self.project = (nn.ModuleList(generation_block(cs, ct, "pointwise") for cs, ct in zip(s_channels, t_channels))
                        if own_projector else None)

    @classmethod
    def build(cls, cfg, pair):
        shared = cfg.th_projector == "fr"
        if shared and not FeatureResampling.shares_projection(cfg):
            LOGGER.warning(f"th_projector=fr needs the FR term without a mask (fr={cfg.fr}, fr_mask={cfg.fr_mask}): "
                           "the teacher-head term uses a projector of its own")
            shared = False
        return cls(pair.s_channels, pair.t_channels, own_projector=not shared)

    def compute(self, ctx):
        projected = None if self.project is not None else ctx.cache["fr_projected"]  # FR (order 10) ran first
        n = passed_images(ctx)
        feats, target = first(ctx.student.feats, n), first_images(ctx.teacher.own, n)
        return {"th_loss": self(feats, target, ctx.teacher.head, None if projected is None else first(projected, n))}

    def forward(self, s_feats: list, target, head, projected: list | None = None) -> torch.Tensor:
        """s_feats: [(B, C_l, H_l, W_l)] per level; target: the teacher's HeadOutputs in its own classes (boxes
        (B, 4*reg_max_T, A), scores (B, nc_T, A)), i.e. `head(teacher feats)`, which the teacher's forward pass has
        already computed; `head(feats) -> HeadOutputs` the teacher's frozen head (`Teacher.head_on`); projected:
        [(B, Ct_l, H_l, W_l)] the student's features already at the teacher's width (the FR term's G(S_l) with
        `th_projector=fr`), else this term's own projector makes them. Returns the scalar loss."""
        if projected is None:
            projected = [p(s) for p, s in zip(self.project, s_feats)]
        return prediction_match(head([p.float().contiguous() for p in projected]), target)


def passed_images(ctx) -> int:
    """How many of the batch's images (the first ones) the teacher-head and teacher-neck terms send through the
    teacher: `teacher_pass_share` of the batch, at least one. Their losses are means, so the share changes their cost
    and their noise, not their scale."""
    batch = ctx.teacher.scores.shape[0]
    return max(1, min(batch, round(ctx.cfg.teacher_pass_share * batch)))


def first(maps: list, n: int) -> list:
    """[(B, ...)] -> the first n images of each; the same list when n = B, so that the default adds no slicing to
    the autograd graph (which would change the order in which gradients are summed, and runs would not reproduce)."""
    return maps if n == maps[0].shape[0] else [m[:n] for m in maps]


def first_images(outputs: HeadOutputs, n: int) -> HeadOutputs:
    """The head outputs of the batch's first n images (feats, boxes, scores; nothing else is carried)."""
    if n == outputs.scores.shape[0]:
        return outputs
    return HeadOutputs(first(outputs.feats, n), outputs.boxes[:n], outputs.scores[:n])


def prediction_match(pred, target) -> torch.Tensor:
    """How far the teacher head's predictions `pred` on other features are from its own, `target` (both HeadOutputs:
    boxes (B, 4*reg_max, A), scores (B, nc, A)): the per-anchor class KL, averaged, plus the box KL (DFL edges; the
    MSE for reg_max = 1 heads) weighted by the teacher's highest class probability. Returns the scalar loss."""
    t_scores, t_boxes = target.scores.detach(), target.boxes.detach()
    cls = binary_kl(t_scores, pred.scores, 1.0).sum(1).mean()  # (B, nc, A) -> per anchor, mean
    w = t_scores.float().sigmoid().amax(1)  # (B, A)
    reg_max = pred.boxes.shape[1] // 4  # the teacher head's DFL bins, not the student's (a YOLO26 student has 1)
    if reg_max > 1:
        err = dfl_edge_kl(pred.boxes, t_boxes, reg_max)  # (B, A)
    else:
        err = (pred.boxes.float() - t_boxes.float()).pow(2).mean(1)  # (B, A)
    return cls + (err * w).sum() / w.sum().clamp_min(1e-12)
