"""The student's training criterion with KD: Ultralytics' own YOLO loss, unchanged, plus the Distiller's terms.

`KDCriterion` wraps the criterion the student would use anyway (`v8DetectionLoss`, or `E2ELoss` for end-to-end
heads) and reads the TaskAlignedAssigner result of the branch it distils through an `AssignmentTap` on that loss
object's assigner, so the assignment is computed once and never reimplemented (with `kd_assign`, the same tap
lets the teacher guide that assignment: yolo_kd/assignment.py). Copies of the student (EMA, checkpoints, DDP
pickling) never carry it: copying yields None, and the copy builds its plain YOLO criterion on first use.
"""

from __future__ import annotations

import torch

from .assignment import AssignmentTap
from .distiller import Distiller
from .teacher import Teacher, head_outputs


class KDTrainingError(RuntimeError):
    """Distillation cannot go on as configured (e.g. a KD term non-finite in most batches of an epoch)."""

    user_facing = True  # the message says what to change; no traceback needed


def _none():
    return None


class KDCriterion:
    """YOLO loss + KD loss in one call: returns (loss_vector * batch_size, items) like any Ultralytics criterion.

    Nothing here synchronises with the host (as Ultralytics' own loss): when any KD term is non-finite, all KD terms
    of the batch are replaced by 0 with `torch.where` and the term is counted in a device tensor, which the trainer
    reads once per epoch; the trainer also zeroes the non-finite gradient entries such a term leaves behind, so the
    batch trains on the YOLO loss alone.
    """

    def __init__(self, base, teacher: Teacher, distiller: Distiller, branch: str = "one2many", budget: float = 0.0,
                 assign: float = 0.0):
        self.base = base
        self.teacher = teacher
        self.distiller = distiller
        self.branch = branch
        det_loss = getattr(base, branch, base) if hasattr(base, "one2many") else base
        self.tap = AssignmentTap(det_loss)
        self.scale = 1.0  # KD schedule multiplier (warm-up, decay), set by the trainer before each batch
        self.held_scale = 1.0  # the same without the decay, for the terms named in `kd_hold`
        self.budget = budget  # cap on sum(KD) / YOLO loss; 0 = none
        self.assign = assign  # share of the assignment taken from the teacher's predictions (times `scale`); 0 = none
        self.backbone_tap = None  # BackboneTap recording the student's neck inputs (teacher-neck term), set by the trainer
        self.bad_counts = None  # (n_terms,) batches in which each term was non-finite, this epoch (device tensor)
        self.skipped_before = 0  # batches with a non-finite KD term in earlier epochs
        self.batches_this_epoch = 0

    def __deepcopy__(self, memo):
        return None

    def __reduce__(self):
        return _none, ()

    def update(self):
        """Forward Ultralytics' per-epoch criterion update (end-to-end loss schedule)."""
        if hasattr(self.base, "update"):
            self.base.update()

    def pop_bad_terms(self) -> dict[str, int]:
        """{term: batches it was non-finite} since the last call (one host sync), and reset the counts."""
        if self.bad_counts is None:
            return {}
        counts = dict(zip(self.distiller.terms, self.bad_counts.tolist()))
        self.bad_counts = None
        return {k: v for k, v in counts.items() if v}

    def __call__(self, preds, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        student = head_outputs(preds, self.branch)
        if self.backbone_tap is not None:  # attached by the trainer for the training batches
            student.backbone = self.backbone_tap.take()
        if self.branch != "one2many":  # one2one feats are detached in end-to-end heads: features come from one2many
            student.feats = head_outputs(preds, "one2many").feats
        batch_size = student.scores.shape[0]
        self.batches_this_epoch += 1
        share = self.assign * self.scale
        teacher = None
        if self.distiller.terms or share > 0:  # scores mapped to the student's classes once, for the guide and the terms
            teacher = self.distiller.in_student_classes(student, self.teacher(batch["img"], self.branch))
        if share > 0:
            self.tap.set_guide(teacher, share)
        try:
            loss, items = self.base(preds, batch)
        finally:
            self.tap.set_guide(None, 0.0)
        if not self.distiller.terms:
            return loss, items
        terms = self.distiller(student, teacher, self.tap.fg_mask, self.tap.labels, batch, self.scale, mapped=True,
                                 held_scale=self.held_scale)
        kd = torch.stack(list(terms.values()))
        finite = torch.isfinite(kd)
        bad = (~finite).int()
        self.bad_counts = bad if self.bad_counts is None else self.bad_counts + bad
        kd = torch.where(finite.all(), kd, torch.zeros_like(kd))  # any term non-finite: YOLO loss only
        yolo = loss.detach().float().sum() / batch_size  # per-image YOLO loss, as logged
        if self.budget > 0:  # scale all KD terms together so that sum(KD) <= budget * YOLO
            kd = kd * (self.budget * yolo / kd.detach().sum().clamp_min(1e-12)).clamp(max=1.0)
        items = {**items, **{k: v.detach() for k, v in zip(terms, kd)}}
        items["kd_ratio"] = kd.detach().sum() / yolo.clamp_min(1e-12)  # logged as train/kd_ratio
        return torch.cat([loss, kd.to(loss.dtype) * batch_size]), items
