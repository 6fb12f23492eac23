"""Feature resampling distillation (paper idea 1; MGD, Yang et al., ECCV 2022).

Per level l: a random fraction `mask_ratio` of the positions of the student feature S_l (B, Cs, H, W) is dropped
(`fill="zero"`, as MGD) or replaced by the features of other, randomly drawn positions of the same map
(`fill="resample"`), and a generation block G must re-create the teacher feature (the target, raw or standardised) from what is left:

    L_fr = mean_l  sum_hw w_l(h,w) * mean_c (G(M(S_l)) - T_l)^2 / sum_hw w_l(h,w)

with w_l the SAM weights (uniform when SAM is off). The student learns to *produce* teacher features from partial
evidence rather than copy them position by position. The package defaults switch the resampling off (`fr_mask=0`,
`fr_generator=pointwise`): on the tuning set it lowered the score (docs/tune64-gpu), so `paper` trains plain imitation
of the raw teacher features through the built-in's projector, weighted by the teacher's foreground. Raw targets
(`feat_norm=none`) beat targets standardised per channel by +3.2 points from scratch, on 10 of 11 paired tuning runs
(docs/tune64-b-strong-gpu2); fine-tuning keeps the standardised ones it was measured with (cfg/finetune.yaml).

The paper's variant generates at the student's width (conv3x3 Cs->Cs, ReLU, conv1x1 Cs->Ct), so its cost scales
with the small student, not the teacher; `fr_generator=separable` factorises that conv3x3 into a depthwise conv3x3
and a conv1x1, for a fraction of the multiply-adds; `fr_generator=pointwise` is the conv1x1-ReLU-conv1x1 projector
of Ultralytics' built-in distillation (with `fr_mask=0`: plain imitation through a projector). `teacher_width=True`
is MGD as published (1x1 align Cs->Ct, mask, then conv3x3-ReLU-conv3x3 at Ct), used by the `mgd` peer.

`feat_norm` (targets raw, or standardised per channel over N·H·W) and `feat_weight_norm` (spatial weights normalised per image
or per batch) are declared here and shared with FAM.
"""

from __future__ import annotations

import torch
from torch import nn

from .common import generation_block, standardize, weighted_mse
from .connector import LevelConnector
from .registry import KDLoss, register


def random_mask(x: torch.Tensor, ratio: float, fill: str = "zero") -> torch.Tensor:
    """Drop a fraction `ratio` of the positions of (B, C, H, W): set them to 0 or to features resampled from random
    positions of the same sample."""
    if ratio <= 0:
        return x
    b, c, h, w = x.shape
    drop = torch.rand(b, 1, h, w, device=x.device) < ratio
    if fill == "zero":
        return x.masked_fill(drop, 0.0)
    idx = torch.randint(0, h * w, (b, 1, h * w), device=x.device).expand(b, c, h * w)
    resampled = x.flatten(2).gather(2, idx).view_as(x)
    return torch.where(drop, resampled, x)


@register("paper")
class FeatureResampling(KDLoss):
    """Masked/resampled generative feature distillation over all levels (the paper's FR, at student width)."""

    name, columns, order = "fr", {"fr_loss": "fr"}, 10
    # measured defaults (docs/tune64-gpu, docs/bench-cpu): imitation through the pointwise projector, no mask, the
    # teacher-foreground weights normalised per batch; the mask and the conv3x3 generator lowered the score there.
    # Raw targets: docs/tune64-b-strong-gpu2 (fine-tuning pins `channel`, cfg/finetune.yaml)
    defaults = {"fr": 18.0, "fr_mask": 0.0, "fr_fill": "zero", "fr_generator": "pointwise", "feat_norm": "none",
                "feat_weight_norm": "batch"}
    choices = {"fr_fill": ("zero", "resample"), "fr_generator": ("full", "separable", "pointwise"),
               "feat_norm": ("channel", "none"), "feat_weight_norm": ("image", "batch")}
    fractions = ("fr_mask",)

    def __init__(
        self,
        s_channels: list[int],
        t_channels: list[int],
        mask_ratio: float = 0.65,
        fill: str = "zero",
        teacher_width: bool = False,
        generator: str = "full",
        weight_norm: str = "image",
    ):
        super().__init__()
        self.mask_ratio, self.fill, self.weight_norm = mask_ratio, fill, weight_norm
        if teacher_width:  # MGD: align, mask, generate at teacher width
            self.align = LevelConnector(s_channels, t_channels)
            self.generate = nn.ModuleList(generation_block(ct) for ct in t_channels)
        else:  # mask and generate at student width, project to the teacher's channels last
            self.align = nn.ModuleList(nn.Identity() for _ in s_channels)
            self.generate = nn.ModuleList(generation_block(cs, ct, generator) for cs, ct in zip(s_channels, t_channels))

    @classmethod
    def build(cls, cfg, pair):
        return cls(pair.s_channels, pair.t_channels, cfg.fr_mask, cfg.fr_fill,
                   generator=cfg.fr_generator, weight_norm=cfg.feat_weight_norm)

    @staticmethod
    def shares_projection(cfg) -> bool:
        """Whether the built term leaves G(S_l) of the whole, unmasked map in `ctx.cache["fr_projected"]` (read by the
        teacher-head term with `th_projector=fr`): only the one rule, used by both."""
        return cfg.fr > 0 and cfg.fr_mask <= 0

    def compute(self, ctx):
        generated = self.generated(ctx.student.feats)
        if self.shares_projection(ctx.cfg):  # G(S_l) of the whole map, for the teacher-head term
            ctx.cache["fr_projected"] = generated
        return {"fr_loss": self.loss(generated, ctx.feature_weights(), ctx.targets())}

    def forward(self, s_feats: list, t_feats: list, weights: list | None = None, targets: list | None = None) -> torch.Tensor:
        """Return the scalar loss; `weights` are optional (B, 1, H_l, W_l) spatial weights per level, `targets` the
        teacher features as targets (ctx.targets(): raw or standardised); standardised when not given."""
        return self.loss(self.generated(s_feats), weights, targets or [standardize(t) for t in t_feats])

    def generated(self, s_feats: list) -> list:
        """G(M(S_l)) per level: (B, Cs_l, H_l, W_l) -> (B, Ct_l, H_l, W_l)."""
        return [g(random_mask(a(s), self.mask_ratio, self.fill)) for g, a, s in zip(self.generate, self.align, s_feats)]

    def loss(self, generated: list, weights: list | None, targets: list) -> torch.Tensor:
        """Mean over levels of the (optionally weighted) MSE between the generated features and the targets."""
        losses = [weighted_mse(gen, targets[l], None if weights is None else weights[l], self.weight_norm).mean()
                  for l, gen in enumerate(generated)]
        return torch.stack(losses).mean()


@register("mgd")
class MaskedGenerativeDistillation(FeatureResampling):
    """The `mgd` peer: MGD as published (align, mask, generate at teacher width), uniform spatial weights."""

    name, columns = "mgd", {"mgd_loss": "mgd"}
    defaults, choices, fractions = {"mgd": 1.0, "mgd_mask": 0.65}, {}, ("mgd_mask",)

    @classmethod
    def build(cls, cfg, pair):
        return cls(pair.s_channels, pair.t_channels, cfg.mgd_mask, teacher_width=True)

    def compute(self, ctx):
        return {"mgd_loss": self(ctx.student.feats, ctx.t_feats)}
