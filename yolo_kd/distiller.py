"""The KD loss of one method: builds the registered losses the method needs and combines their weighted terms.

`Distiller.terms` is the ordered tuple of logged columns (e.g. `fr_loss`, `sam_loss`, ...); a term with weight 0 is
not built and not logged, a term that cannot be built for the pair is listed in `skipped` with the reason, and a
`kd_hold` key whose term is not built is listed in `idle_holds` (the trainer warns about both). All
trainable KD parameters (adapters, generators, FAM) live in this one nn.Module, which the optimizer trains and
checkpoints store under their own key, never inside the student. Methods and their losses come from
`yolo_kd.losses.REGISTRY`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .classmap import ClassMap, resolve_class_map
from .config import KDConfig
from .losses import REGISTRY, KDContext, Pair
from .losses.registry import weight_key
from .teacher import HeadOutputs, class_names, detect_head, probe_channels


class Distiller(nn.Module):
    """All KD terms of one method for a given student/teacher pair.

    Args:
        cfg: validated KD settings.
        s_channels / t_channels: channels of the Detect-head inputs (P3, P4, P5, ...) of student and teacher.
        reg_max: DFL bins of the student head.
        same_classes: teacher and student predict the same classes (TCKD/NCKD/BGKD and `kd` need it).
        same_reg_max: teacher and student have the same DFL bins (LD needs it).
        nc: number of classes (NCKD is not built for nc <= 2).
        class_index: teacher class of each student class (-1: none), when the teacher's classes are not the
            student's in the same order (see `yolo_kd.classmap`); None for identical classes.
        t_nc: number of teacher classes (its classes outside `class_index` are the ones the data does not label).
        s_neck_in / t_neck_in: (channels, stride) of each backbone output the neck reads (the teacher-neck term
            needs them).
    """

    def __init__(self, cfg: KDConfig, s_channels: list[int], t_channels: list[int], reg_max: int,
                 same_classes: bool = True, same_reg_max: bool = True, nc: int | None = None,
                 class_index: tuple | None = None, t_nc: int | None = None, s_neck_in=(), t_neck_in=()):
        super().__init__()
        self.cfg = cfg
        self.register_buffer("class_index", None if class_index is None else torch.tensor(class_index), persistent=False)
        unlabeled = None if class_index is None or t_nc is None else sorted(set(range(t_nc)) - set(class_index))
        self.register_buffer("unlabeled_index", torch.tensor(unlabeled) if unlabeled else None, persistent=False)
        self.pair = pair = Pair(tuple(s_channels), tuple(t_channels), reg_max, nc, same_classes, same_reg_max,
                                tuple(s_neck_in), tuple(t_neck_in))
        self.weights, self.skipped = {}, {}
        for cls in REGISTRY.get(cfg.method, []):
            built = {}
            for column, key in cls.columns.items():
                weight = float(getattr(cfg, key))
                if weight <= 0:
                    continue
                reason = cls.skip_reason(column, pair)
                if reason:
                    self.skipped[column] = reason
                else:
                    built[column] = weight
            if built:
                self.add_module(cls.name, cls.build(cfg, pair))
                self.weights.update(built)
        self.terms = tuple(self.weights)
        self.held = frozenset(k for k in self.terms if self.weight_key(k) in cfg.held)  # skip the schedule's decay
        held_keys = {self.weight_key(k) for k in self.held}
        self.idle_holds = tuple(k for k in cfg.held if k not in held_keys)  # keys whose term is not built: hold nothing

    def weight_key(self, column: str) -> str:
        """The config key holding a column's weight ('fr_loss' -> 'fr', 'kd_loss' -> 'logit_kd')."""
        return weight_key(self.cfg.method, column)

    def map_classes(self, student: HeadOutputs, teacher: HeadOutputs) -> HeadOutputs:
        """Teacher scores (B, nc_teacher, A) -> (B, nc_student, A) in the student's class order. A student class with
        no teacher class takes the student's own detached logits, so every logit term is 0 for it. With
        `unlabeled_as_background`, each mapped probability q is lowered to q * (1 - r), r the teacher's highest
        probability among the classes the data does not label: where the teacher sees such an object, every
        student class is taught background there."""
        idx = self.class_index
        scores = teacher.scores.index_select(1, idx.clamp(min=0))
        if self.unlabeled_index is not None and self.cfg.unlabeled_as_background:
            other = teacher.scores.index_select(1, self.unlabeled_index).amax(1, keepdim=True)  # (B, 1, A)
            scores = suppressed_logits(scores, other)
        scores = torch.where((idx >= 0)[None, :, None], scores, student.scores.detach().to(scores.dtype))
        return HeadOutputs(teacher.feats, teacher.boxes, scores, teacher.head, unmapped=teacher.own)

    def in_student_classes(self, student: HeadOutputs, teacher: HeadOutputs) -> HeadOutputs:
        """The teacher's outputs with its scores in the student's class order (mapped when a class map is in use)."""
        return teacher if self.class_index is None else self.map_classes(student, teacher)

    def clip(self, value: torch.Tensor) -> torch.Tensor:
        """Cap a term's value at `kd_clip`, rescaling (not zeroing) its gradient above the cap."""
        c = self.cfg.kd_clip
        if c <= 0:
            return value
        return value * (c / value.detach().clamp_min(c))

    def forward(
        self,
        student: HeadOutputs,
        teacher: HeadOutputs,
        fg_mask: torch.Tensor,
        labels: torch.Tensor,
        batch: dict,
        scale: float = 1.0,
        mapped: bool = False,
        held_scale: float | None = None,
    ) -> dict[str, torch.Tensor]:
        """Return {column: weighted, clipped scalar} for one batch, times the schedule's `scale` (warm-up, decay), or
        `held_scale` (warm-up only; default `scale`) for the terms named in `kd_hold`.

        student/teacher: head outputs (feats per level, boxes (B, 4*reg_max, A), scores (B, nc, A)); `mapped=True`
        when the teacher's scores are already in the student's class order (`in_student_classes`).
        fg_mask (B, A) bool and labels (B, A) long: the student's TaskAlignedAssigner result.
        """
        if not mapped:
            teacher = self.in_student_classes(student, teacher)
        ctx = KDContext(student, teacher, fg_mask, labels, batch, self.cfg)
        raw = {}
        for loss in self.children():
            raw.update(loss.compute(ctx))
        held_scale = scale if held_scale is None else held_scale
        return {k: self.clip(raw[k]) * self.weights[k] * (held_scale if k in self.held else scale) for k in self.terms}


def suppressed_logits(z: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """logit(sigmoid(z) * (1 - sigmoid(other))), computed in log space (stable for any logits). Shapes broadcast."""
    log_q = (F.logsigmoid(z.float()) + F.logsigmoid(-other.float())).clamp(max=-1e-10)  # log of the lowered q
    log_not_q = torch.where(log_q > -0.6931, torch.log(-torch.expm1(log_q)), torch.log1p(-torch.exp(log_q)))
    return (log_q - log_not_q).to(z.dtype)


def build_distiller(cfg: KDConfig, student: nn.Module, teacher: nn.Module, data_names, channels: int = 3
                    ) -> tuple[Distiller, ClassMap | None]:
    """The Distiller for a student/teacher pair on data with `data_names` classes and `channels` image channels:
    head channels from one probe pass each, the class map (None: no shared class), DFL bins and classes compared.
    Returns the Distiller (on CPU) and the class map."""
    cmap = resolve_class_map(class_names(teacher), data_names, cfg.class_map)
    s_head, t_head = detect_head(student), detect_head(teacher)
    neck = cfg.method == "paper" and float(cfg.tn) > 0  # the teacher-neck term's channels, read by the same probe
    (s_channels, s_neck_in), (t_channels, t_neck_in) = (probe_channels(m, channels, neck) for m in (student, teacher))
    distiller = Distiller(cfg, s_channels, t_channels, s_head.reg_max,
                          same_classes=cmap is not None, same_reg_max=t_head.reg_max == s_head.reg_max, nc=s_head.nc,
                          class_index=None if cmap is None or cmap.identity else cmap.index,
                          t_nc=t_head.nc, s_neck_in=s_neck_in, t_neck_in=t_neck_in)
    return distiller, cmap
