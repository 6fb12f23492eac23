"""The student's training criterion with KD: Ultralytics' own YOLO loss, unchanged, plus the Distiller's terms.

`KDCriterion` wraps the criterion the student would use anyway (`v8DetectionLoss`, or `E2ELoss` for end-to-end
heads) and reads the TaskAlignedAssigner result of the branch it distils through an `AssignmentTap` on that loss
object's assigner, so the assignment is computed once and never reimplemented. Copies of the student (EMA, checkpoints, DDP
pickling) never carry it: copying yields None, and the copy builds its plain YOLO criterion on first use.
"""

from __future__ import annotations

import torch

from ultralytics.utils import LOGGER

from .distiller import Distiller
from .teacher import Teacher, head_outputs


class KDTrainingError(RuntimeError):
    """Distillation cannot go on as configured (e.g. a KD term non-finite in most batches of an epoch)."""

    user_facing = True  # the message says what to change; no traceback needed


def _none():
    return None


class AssignmentTap:
    """Wraps a v8DetectionLoss instance's TaskAlignedAssigner (this object only, no global patch) and keeps its last
    result: `labels` (B, A) assigned class and `fg_mask` (B, A) bool."""

    def __init__(self, det_loss):
        self.assigner = det_loss.assigner
        det_loss.assigner = self
        self.labels = self.fg_mask = None

    def __call__(self, *args, **kwargs):
        out = self.assigner(*args, **kwargs)  # target_labels, target_bboxes, target_scores, fg_mask, target_gt_idx
        self.labels, self.fg_mask = out[0].long(), out[3]
        return out


class KDCriterion:
    """YOLO loss + KD loss in one call: returns (loss_vector * batch_size, items) like any Ultralytics criterion.

    Non-finite KD terms never reach the optimizer: the batch falls back to the plain YOLO loss and `skipped` counts it.
    """

    def __init__(self, base, teacher: Teacher, distiller: Distiller, branch: str = "one2many", budget: float = 0.0):
        self.base = base
        self.teacher = teacher
        self.distiller = distiller
        self.branch = branch
        det_loss = getattr(base, branch, base) if hasattr(base, "one2many") else base
        self.tap = AssignmentTap(det_loss)
        self.scale = 1.0  # KD schedule multiplier (warm-up, decay), set by the trainer before each batch
        self.budget = budget  # cap on sum(KD) / YOLO loss; 0 = none
        self.skipped = 0  # batches whose KD terms were dropped, whole run
        self.bad_this_epoch: dict[str, int] = {}  # term -> batches it was non-finite, reset by the trainer each epoch
        self.batches_this_epoch = 0

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
        if self.branch != "one2many":  # one2one feats are detached in end-to-end heads: features come from one2many
            student.feats = head_outputs(preds, "one2many").feats
        batch_size = student.scores.shape[0]
        teacher = self.teacher(batch["img"], self.branch)
        terms = self.distiller(student, teacher, self.tap.fg_mask, self.tap.labels, batch, self.scale)
        kd = torch.stack(list(terms.values())) if terms else loss.new_zeros(0)
        self.batches_this_epoch += 1
        if not torch.isfinite(kd).all():
            self.skipped += 1
            bad = [k for k, v in terms.items() if not torch.isfinite(v)]
            for k in bad:
                self.bad_this_epoch[k] = self.bad_this_epoch.get(k, 0) + 1
            LOGGER.warning(f"non-finite KD term(s) {bad}: batch trained on the YOLO loss only ({self.skipped} so far)")
            kd = torch.zeros_like(kd)
        yolo = loss.detach().float().sum() / batch_size  # per-image YOLO loss, as logged
        if self.budget > 0 and terms:  # scale all KD terms together so that sum(KD) <= budget * YOLO (no host sync)
            kd = kd * (self.budget * yolo / kd.detach().sum().clamp_min(1e-12)).clamp(max=1.0)
        items = {**items, **{k: v.detach() for k, v in zip(terms, kd)}}
        if terms:
            items["kd_ratio"] = kd.detach().sum() / yolo.clamp_min(1e-12)  # logged as train/kd_ratio
        return torch.cat([loss, kd.to(loss.dtype) * batch_size]), items
