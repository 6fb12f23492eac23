"""Teacher-assisted label assignment (option `kd_assign`; an addition to the paper's four ideas, off by default).

Ultralytics' TaskAlignedAssigner picks the positive anchors of each ground-truth box, and their soft class targets, from
the alignment s^0.5 * IoU^6 of the student's own predictions. Early in training those are noise, so the positives
change from batch to batch and need not be where the teacher, whose features the student is taught to reproduce,
finds the object. With `kd_assign` = a the assigner sees a blend of the two models' predictions instead:

    scores = sigmoid(s_S) + a*k * (sigmoid(s_T) - sigmoid(s_S))      (B, A, nc) probabilities
    boxes  = b_S + a*k * (b_T - b_S)                                  (B, A, 4) xyxy pixels

with k the KD schedule's multiplier (warm-up, cosine decay), so the assignment passes back to the student as KD
fades. The student's own predictions are still what the YOLO loss scores, against the assigned targets; the KD terms
that read the assignment (the DKD logit terms) get the guided positives too.
Needs the teacher's DFL bins to equal the student's (its boxes are decoded with the student loss's decoder) and classes
in the student's order (mapped first when a class map is in use).
"""

from __future__ import annotations

import torch
from ultralytics.utils.tal import make_anchors

from .teacher import HeadOutputs


def decoded_predictions(det_loss, head: HeadOutputs) -> tuple[torch.Tensor, torch.Tensor]:
    """A head's class probabilities (B, A, nc) and boxes (B, A, 4) as xyxy pixels, decoded as `det_loss` (a
    v8DetectionLoss) decodes the student's for its assigner."""
    anchor_points, stride_tensor = make_anchors(head.feats, det_loss.stride, 0.5)
    boxes = det_loss.bbox_decode(anchor_points, head.boxes.detach().float().permute(0, 2, 1).contiguous())
    return head.scores.detach().float().permute(0, 2, 1).sigmoid(), boxes * stride_tensor


class AssignmentTap:
    """Wraps a v8DetectionLoss instance's TaskAlignedAssigner (this object only, no global patch) and keeps its last
    result: `labels` (B, A) assigned class and `fg_mask` (B, A) bool. When `guide` holds (teacher probabilities
    (B, A, nc), teacher boxes (B, A, 4), share), the assigner sees the student's predictions moved that share of the
    way to the teacher's."""

    def __init__(self, det_loss):
        self.det_loss = det_loss
        self.assigner = det_loss.assigner
        det_loss.assigner = self
        self.labels = self.fg_mask = None
        self.guide = None

    def __call__(self, pd_scores, pd_bboxes, *args, **kwargs):
        if self.guide is not None:
            t_scores, t_boxes, share = self.guide
            pd_scores = torch.lerp(pd_scores, t_scores.to(pd_scores.dtype), share)
            pd_bboxes = torch.lerp(pd_bboxes, t_boxes.to(pd_bboxes.dtype), share)
        out = self.assigner(pd_scores, pd_bboxes, *args, **kwargs)  # labels, bboxes, scores, fg_mask, gt_idx
        self.labels, self.fg_mask = out[0].long(), out[3]
        return out

    def set_guide(self, teacher: HeadOutputs | None, share: float) -> None:
        """Guide the next assignment by `teacher` (class order already the student's) at `share` in [0, 1]; None or
        share 0: the student's own predictions, as Ultralytics."""
        self.guide = None if teacher is None or share <= 0 else (*decoded_predictions(self.det_loss, teacher), share)
