"""The KD loss: builds the loss modules a method needs and combines their weighted terms.

`Distiller.terms` is the ordered tuple of logged columns (e.g. `fr_loss`, `sam_loss`, ...); a term with weight 0 is
not built and not logged. All trainable KD parameters (adapters, generators, FAM) live in this one nn.Module, which
the optimizer trains and checkpoints store under their own key, never inside the student.
"""

from __future__ import annotations

import torch
from torch import nn

from .config import KDConfig
from .losses import (
    ChannelWiseDistillation,
    DecoupledLogitDistillation,
    FeatureAlignmentModule,
    FeatureMimic,
    FeatureResampling,
    LocalizationDistillation,
    SigmoidLogitDistillation,
    SpatialAttention,
    foreground_maps,
    spatial_weights,
)
from .losses.common import standardize
from .losses.spatial_attention import spatial_attention
from .teacher import HeadOutputs

# method -> {column: config key holding its weight}
METHOD_TERMS = {
    "paper": {
        "fr_loss": "fr",
        "sam_loss": "sam",
        "fam_loss": "fam",
        "tckd_loss": "tckd",
        "nckd_loss": "nckd",
        "bgkd_loss": "bgkd",
        "ld_loss": "ld",
    },
    "mimic": {"mimic_loss": "mimic"},
    "cwd": {"cwd_loss": "cwd"},
    "mgd": {"mgd_loss": "mgd"},
    "kd": {"kd_loss": "logit_kd"},
    "none": {},
}


LOGIT_CLASS_TERMS = {"tckd_loss", "nckd_loss", "bgkd_loss", "kd_loss"}  # need the same classes in teacher and student


def unbuildable_reason(column: str, same_classes: bool, same_reg_max: bool, nc: int | None) -> str | None:
    """Why a configured term cannot be built for this teacher/student pair, or None when it can."""
    if column in LOGIT_CLASS_TERMS and not same_classes:
        return "teacher and student classes differ"
    if column == "ld_loss" and not same_reg_max:
        return "LD needs the same DFL bins (reg_max) in teacher and student"
    if column == "nckd_loss" and nc is not None and nc <= 2:
        return f"NCKD is identically 0 with {nc} class(es): no non-target distribution to transfer"
    return None


class Distiller(nn.Module):
    """All KD terms of one method for a given student/teacher pair.

    Args:
        cfg: validated KD settings.
        s_channels / t_channels: channels of the Detect-head inputs (P3, P4, P5, ...) of student and teacher.
        reg_max: DFL bins of the student head.
        same_classes: teacher and student predict the same classes (TCKD/NCKD/BGKD and `kd` need it).
        same_reg_max: teacher and student have the same DFL bins (LD needs it).
        nc: number of classes (NCKD is not built for nc <= 2).

    `skipped` maps each configured term that was not built to the reason.
    """

    def __init__(self, cfg: KDConfig, s_channels: list[int], t_channels: list[int], reg_max: int,
                 same_classes: bool = True, same_reg_max: bool = True, nc: int | None = None):
        super().__init__()
        self.cfg = cfg
        self.weights, self.skipped = {}, {}
        for col, key in METHOD_TERMS[cfg.method].items():
            weight = float(getattr(cfg, key))
            if weight <= 0:
                continue
            reason = unbuildable_reason(col, same_classes, same_reg_max, nc)
            if reason:
                self.skipped[col] = reason
            else:
                self.weights[col] = weight
        self.terms = tuple(self.weights)
        w = self.weights
        self.fr = FeatureResampling(s_channels, t_channels, cfg.fr_mask, cfg.fr_fill) if "fr_loss" in w else None
        self.sam = SpatialAttention(s_channels, t_channels, cfg.sam_temp) if "sam_loss" in w else None
        self.fam = FeatureAlignmentModule(s_channels, t_channels, cfg.fam_levels) if "fam_loss" in w else None
        self.dkd = DecoupledLogitDistillation(cfg.kd_temp) if w.keys() & {"tckd_loss", "nckd_loss", "bgkd_loss"} else None
        self.ld = LocalizationDistillation(reg_max, cfg.ld_temp) if "ld_loss" in w else None
        self.mimic = FeatureMimic(s_channels, t_channels) if "mimic_loss" in w else None
        self.cwd = ChannelWiseDistillation(s_channels, t_channels, cfg.cwd_temp) if "cwd_loss" in w else None
        self.mgd = FeatureResampling(s_channels, t_channels, cfg.mgd_mask, teacher_width=True) if "mgd_loss" in w else None
        self.logit_kd = SigmoidLogitDistillation(cfg.kd_temp) if "kd_loss" in w else None
        self.uses_sam_weights = cfg.method == "paper" and bool(cfg.sam_weighting) and (self.fr is not None or self.fam is not None)

    def weight_key(self, column: str) -> str:
        """The config key holding a column's weight ('fr_loss' -> 'fr', 'kd_loss' -> 'logit_kd')."""
        return METHOD_TERMS[self.cfg.method].get(column, column.removesuffix("_loss"))

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
    ) -> dict[str, torch.Tensor]:
        """Return {column: weighted, clipped scalar} for one batch, times the schedule's `scale` (warm-up, decay).

        student/teacher: head outputs (feats per level, boxes (B, 4*reg_max, A), scores (B, nc, A)).
        fg_mask (B, A) bool and labels (B, A) long: the student's TaskAlignedAssigner result.
        """
        s_feats, t_feats = student.feats, [t.detach() for t in teacher.feats]
        raw = {}
        weights, t_attention = None, None
        targets = [standardize(t) for t in t_feats] if (self.fr is not None or self.fam is not None) else None  # FR, FAM
        if self.sam is not None or self.uses_sam_weights:
            t_attention = [spatial_attention(t, self.cfg.sam_temp) for t in t_feats]
        if self.uses_sam_weights:
            fg = foreground_maps(batch, [tuple(t.shape[-2:]) for t in t_feats], t_feats[0].shape[0])
            weights = spatial_weights(t_attention, fg, self.cfg.sam_bg)
        if self.fr is not None:
            raw["fr_loss"] = self.fr(s_feats, t_feats, weights, targets)
        if self.sam is not None:
            raw["sam_loss"] = self.sam(s_feats, t_feats, t_attention)
        if self.fam is not None:
            raw["fam_loss"] = self.fam(s_feats, t_feats, weights, targets)
        if self.dkd is not None:
            parts = self.dkd(student.scores, teacher.scores.detach(), fg_mask, labels)
            raw.update({f"{k}_loss": v for k, v in parts.items() if f"{k}_loss" in self.weights})
        if self.ld is not None:
            raw["ld_loss"] = self.ld(student.boxes, teacher.boxes.detach(), fg_mask)
        if self.mimic is not None:
            raw["mimic_loss"] = self.mimic(s_feats, t_feats)
        if self.cwd is not None:
            raw["cwd_loss"] = self.cwd(s_feats, t_feats)
        if self.mgd is not None:
            raw["mgd_loss"] = self.mgd(s_feats, t_feats)
        if self.logit_kd is not None:
            raw["kd_loss"] = self.logit_kd(student.scores, teacher.scores.detach())
        return {k: self.clip(raw[k]) * self.weights[k] * scale for k in self.terms}
