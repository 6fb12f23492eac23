"""One-to-many matching distillation with a Feature Alignment Module, FAM (paper idea 4; after ReviewKD, Chen et
al., CVPR 2021, and SemCKD, Chen et al., AAAI 2021).

Each student level i is aligned to every teacher level j in its match set (all levels, or i and its neighbours):
a 1x1 conv maps channels Cs_i -> Ct_j and the map is resized to the teacher's resolution (average pooling to a
coarser level, bilinear to a finer one). Instead of a fixed one-to-one pairing, the student level learns from all
of them with per-sample attention weights (SemCKD-style query/key over globally pooled features):

    alpha_ij = softmax_j( <q_i(gap S_i), k_j(gap T_j)> / sqrt(d) ),     sum_j alpha_ij = 1
    L_fam   = mean_i  sum_j alpha_ij * sum_hw w_j * mean_c (FAM_ij(S_i) - T_j)^2 / sum_hw w_j

with w_j the SAM weights of teacher level j (uniform when SAM is off) and T_j the teacher feature as FR's target
(raw, or standardised per channel with `feat_norm=channel`).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .common import conv1x1, resize_to, standardize, weighted_mse
from .registry import KDLoss, register


def match_sets(n_student: int, n_teacher: int, levels: str = "adjacent") -> list[list[int]]:
    """Teacher levels each student level learns from: all of them, the same level and its neighbours, or the same
    level only (`same`: one-to-one, the control for one-to-many)."""
    if levels == "all":
        return [list(range(n_teacher)) for _ in range(n_student)]
    if levels == "same":
        return [[i] for i in range(min(n_student, n_teacher))]
    return [[j for j in (i - 1, i, i + 1) if 0 <= j < n_teacher] for i in range(n_student)]


@register("paper")
class FeatureAlignmentModule(KDLoss):
    """Channel + resolution aligners for every (student level, teacher level) pair and attention over teacher levels."""

    name, columns, order = "fam", {"fam_loss": "fam"}, 30
    # off in `paper` by measurement (it lowered the score on the tuning set and the bench); cfg/paper_with_fam.yaml
    # and cfg/paper_all.yaml switch it on at fam 6
    defaults, choices = {"fam": 0.0, "fam_levels": "adjacent"}, {"fam_levels": ("all", "adjacent", "same")}

    def __init__(self, s_channels: list[int], t_channels: list[int], levels: str = "adjacent", dim: int = 64,
                 weight_norm: str = "image"):
        super().__init__()
        self.weight_norm = weight_norm
        self.matches = match_sets(len(s_channels), len(t_channels), levels)
        self.align = nn.ModuleDict(
            {f"{i}_{j}": conv1x1(s_channels[i], t_channels[j]) for i, js in enumerate(self.matches) for j in js}
        )
        self.query = nn.ModuleList(nn.Linear(c, dim) for c in s_channels)
        self.key = nn.ModuleList(nn.Linear(c, dim) for c in t_channels)
        self.scale = 1 / math.sqrt(dim)
        self._alpha_sum: list[torch.Tensor | None] = [None] * len(self.matches)  # per student level, on device
        self._alpha_batches = 0

    def alpha_means(self, reset: bool = True) -> dict[str, float]:
        """Mean attention weight of each (student level i, teacher level j) pair since the last reset, as
        {'s{i}_t{j}': alpha}: the evidence of whether each student level still learns from several teacher levels.
        One host sync; call once per epoch."""
        out = {}
        if self._alpha_batches:
            for i, total in enumerate(self._alpha_sum):
                for j, a in zip(self.matches[i], (total / self._alpha_batches).tolist()):
                    out[f"s{i}_t{j}"] = round(a, 4)
        if reset:
            self._alpha_sum, self._alpha_batches = [None] * len(self.matches), 0
        return out

    @classmethod
    def build(cls, cfg, pair):
        return cls(pair.s_channels, pair.t_channels, cfg.fam_levels, weight_norm=cfg.feat_weight_norm)

    def compute(self, ctx):
        return {"fam_loss": self(ctx.student.feats, ctx.t_feats, ctx.feature_weights(), ctx.targets())}

    def align_pair(self, s: torch.Tensor, i: int, j: int, size) -> torch.Tensor:
        """Student level i -> teacher level j: 1x1 conv and resize, done at the smaller of the two resolutions
        (a 1x1 conv commutes with average pooling and bilinear resizing)."""
        conv = self.align[f"{i}_{j}"]
        if s.shape[-2] * s.shape[-1] > size[0] * size[1]:
            return conv(resize_to(s, size))
        return resize_to(conv(s), size)

    def attention(self, s_feats: list, t_feats: list) -> list[torch.Tensor]:
        """Per student level, (B, len(matches[i])) weights over its teacher levels; each row sums to 1."""
        keys = [self.key[j](t.float().mean(dim=(2, 3))) for j, t in enumerate(t_feats)]  # (B, d)
        out = []
        for i, s in enumerate(s_feats):
            q = self.query[i](s.float().mean(dim=(2, 3)))  # (B, d)
            logits = torch.stack([(q * keys[j]).sum(1) for j in self.matches[i]], 1) * self.scale
            out.append(logits.softmax(1))
        return out

    def forward(self, s_feats: list, t_feats: list, weights: list | None = None, targets: list | None = None) -> torch.Tensor:
        """Scalar one-to-many alignment loss; `weights` are optional (B, 1, H_j, W_j) spatial weights per level,
        `targets` the teacher features as targets (ctx.targets(): raw or standardised); standardised when not given."""
        alphas = self.attention(s_feats, t_feats)
        if self.training:
            self._alpha_batches += 1
            for i, a in enumerate(alphas):
                mean = a.detach().mean(0)
                self._alpha_sum[i] = mean if self._alpha_sum[i] is None else self._alpha_sum[i] + mean
        targets = targets or [standardize(t) for t in t_feats]
        losses = []
        for i, s in enumerate(s_feats):
            per_level = []
            for j in self.matches[i]:
                aligned = self.align_pair(s, i, j, t_feats[j].shape[-2:])
                weight = None if weights is None else weights[j]
                per_level.append(weighted_mse(aligned, targets[j], weight, self.weight_norm))
            losses.append((alphas[i] * torch.stack(per_level, 1)).sum(1).mean())  # (B, M) -> scalar
        return torch.stack(losses).mean()
