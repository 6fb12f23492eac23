"""Teacher-neck distillation (beyond the abstract; the teacher-head term one stage earlier, as in hybrid
student/teacher forward passes).

The student's backbone outputs B_j that its neck reads (P3, P4, P5), projected to the teacher's channels by
projectors R_j of their own (conv1x1-ReLU-conv1x1), go through the teacher's frozen neck and head N; the predictions
there must match the teacher's own, with the teacher-head term's loss (`teacher_head.prediction_match`):

    L_tn = match(N(R(B)), N(B^T))

The teacher-head term sends the prediction-space error into the student's neck outputs; this one sends it straight
into the student's backbone, measured through the teacher's own neck. Gradients reach the projectors and the
student only. The student's backbone outputs are recorded by forward hooks that are on during the training batches
only (`yolo_kd.neck.BackboneTap`, attached and removed by the trainer).

From scratch `tn=7` (the teacher-head term's weight) is a default: added to `paper` it scored +3.6 ± 5.1 points over 16
tuning seeds, ahead on 13, by a rule committed before the runs (docs/tune64/teacher-neck.md). Fine-tuning: 0 (−0.5 ± 1.1
over 8 tuning seeds, ahead on 1: docs/tune64/finetune-tn.md; `cfg/finetune.yaml`).
"""

from __future__ import annotations

import torch
from torch import nn

from .common import generation_block
from .registry import KDLoss, register
from .teacher_head import first, first_images, passed_images, prediction_match


@register("paper")
class TeacherNeckDistillation(KDLoss):
    """The teacher's frozen neck and head on the student's projected backbone outputs must predict what they predict
    on the teacher's own."""

    name, columns, order = "tn", {"tn_loss": "tn"}, 16
    defaults = {"tn": 7.0}  # from scratch (docs/tune64/teacher-neck.md); fine-tuning 0 (docs/tune64/finetune-tn.md)

    def __init__(self, s_channels: tuple, t_channels: tuple):
        super().__init__()
        self.project = nn.ModuleList(generation_block(cs, ct, "pointwise") for cs, ct in zip(s_channels, t_channels))

    @classmethod
    def skip_reason(cls, column, pair):
        s, t = pair.s_neck_in, pair.t_neck_in
        if not s or len(s) != len(t):
            return (f"the teacher-neck term needs the backbone outputs that each neck reads, one per level on both "
                    f"sides (student {len(s)}, teacher {len(t)})")
        s_strides, t_strides = ([stride for _, stride in side] for side in (s, t))
        if s_strides != t_strides:
            return (f"the necks read backbone outputs at different strides (student {s_strides}, teacher {t_strides}), "
                    f"so the teacher's neck cannot take the student's")
        return None

    @classmethod
    def build(cls, cfg, pair):
        return cls(*([c for c, _ in side] for side in (pair.s_neck_in, pair.t_neck_in)))

    def compute(self, ctx):
        target = ctx.teacher.own
        if not ctx.student.backbone:
            raise RuntimeError("teacher-neck term: the student's backbone outputs were not recorded for this batch "
                               "(KDTrainer records them during training batches; elsewhere call "
                               "criterion.backbone_tap.attach() before the forward pass, or set tn=0)")
        n = passed_images(ctx)
        return {"tn_loss": self(first(ctx.student.backbone, n), first_images(target, n), target.neck)}

    def forward(self, s_backbone: list, target, neck) -> torch.Tensor:
        """s_backbone: [(B, C_j, H_j, W_j)] the student's neck inputs; target: the teacher's HeadOutputs (its own
        classes); `neck(backbone) -> HeadOutputs` the teacher's frozen neck and head. Returns the scalar loss."""
        return prediction_match(neck([p(s).float().contiguous() for p, s in zip(self.project, s_backbone)]), target)
