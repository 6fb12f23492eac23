"""The student's training criterion with KD: Ultralytics' own YOLO loss, unchanged, plus the Distiller's terms.

`KDCriterion` wraps the criterion the student would use anyway (`v8DetectionLoss`, or `E2ELoss` for end-to-end
heads) and reads the TaskAlignedAssigner result of the branch it distils through an `AssignmentTap` on that loss
object, so the assignment is computed once and never reimplemented. Copies of the student (EMA, checkpoints, DDP
pickling) never carry it: copying yields None, and the copy builds its plain YOLO criterion on first use.
"""

from __future__ import annotations

import torch

from ultralytics.utils import LOGGER

from .distiller import Distiller
from .teacher import Teacher, head_outputs


def _none():
    return None


class AssignmentTap:
    """Records (fg_mask, target_gt_idx) from a v8DetectionLoss instance's `get_assigned_targets_and_loss` calls."""

    def __init__(self, det_loss):
        self.det_loss = det_loss
        self._fn = det_loss.get_assigned_targets_and_loss
        det_loss.get_assigned_targets_and_loss = self  # instance attribute: this object only, no global patch
        self.last = None

    def __call__(self, preds, batch, **kwargs):
        out = self._fn(preds, batch, **kwargs)
        fg_mask, target_gt_idx = out[0][:2]
        self.last = (fg_mask, target_gt_idx)
        return out

    def labels(self, batch: dict, batch_size: int) -> torch.Tensor:
        """Class assigned to every anchor, (B, A) long, using the loss's own target padding."""
        fg_mask, target_gt_idx = self.last
        targets = torch.cat((batch["batch_idx"].view(-1, 1), batch["cls"].view(-1, 1), batch["bboxes"]), 1)
        gt = self.det_loss.preprocess(targets.to(fg_mask.device), batch_size, torch.ones(4, device=fg_mask.device))
        if gt.shape[1] == 0:
            return torch.zeros_like(target_gt_idx)
        return gt[..., 0].long().gather(1, target_gt_idx.clamp(max=gt.shape[1] - 1))


class KDCriterion:
    """YOLO loss + KD loss in one call: returns (loss_vector * batch_size, items) like any Ultralytics criterion.

    Non-finite KD terms never reach the optimizer: the batch falls back to the plain YOLO loss and `skipped` counts it.
    """

    def __init__(self, base, teacher: Teacher, distiller: Distiller, branch: str = "one2many"):
        self.base = base
        self.teacher = teacher
        self.distiller = distiller
        self.branch = branch
        det_loss = getattr(base, branch, base) if hasattr(base, "one2many") else base
        self.tap = AssignmentTap(det_loss)
        self.progress = 0.0  # epochs done, set by the trainer each batch (KD warm-up)
        self.skipped = 0

    def __deepcopy__(self, memo):
        return None

    def __reduce__(self):
        return _none, ()

    def update(self):
        """Forward Ultralytics' per-epoch criterion update (end-to-end loss schedule)."""
        if hasattr(self.base, "update"):
            self.base.update()

    def __call__(self, preds, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        loss, items = self.base(preds, batch)
        student = head_outputs(preds, self.branch)
        batch_size = student.scores.shape[0]
        teacher = self.teacher(batch["img"])
        labels = self.tap.labels(batch, batch_size)
        terms = self.distiller(student, teacher, self.tap.last[0], labels, batch, self.progress)
        kd = torch.stack(list(terms.values())) if terms else loss.new_zeros(0)
        if not torch.isfinite(kd).all():
            self.skipped += 1
            bad = [k for k, v in terms.items() if not torch.isfinite(v)]
            LOGGER.warning(f"non-finite KD term(s) {bad}: batch trained on the YOLO loss only ({self.skipped} so far)")
            kd = torch.zeros_like(kd)
        items = {**items, **{k: v.detach() for k, v in zip(terms, kd)}}
        return torch.cat([loss, kd.to(loss.dtype) * batch_size]), items
