"""The KD method registry and the one interface every KD loss implements.

A loss is an `nn.Module` subclass of `KDLoss` that declares the columns it logs (each with the config key of its
weight), the KD keys it introduces (with defaults and constraints), how it is built for a teacher/student `Pair`,
and `compute(ctx) -> {column: scalar}` from one `KDContext`. `@register("method", ...)` adds it to methods. Config
keys, method names, the trainer's columns and checkpoints are all derived from here, so adding a KD method means one
file under `yolo_kd/losses/` and one `@register` line.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

REGISTRY: dict[str, list[type[KDLoss]]] = {}  # method -> its loss classes, by `order`


def register(*methods: str):
    """Class decorator: add a KDLoss subclass to each of `methods`."""

    def add(cls):
        for m in methods:
            REGISTRY.setdefault(m, []).append(cls)
            REGISTRY[m].sort(key=lambda c: c.order)
        return cls

    return add


@dataclass(frozen=True)
class Pair:
    """What a teacher/student pair offers: head-input channels per level, the student's DFL bins and classes,
    whether classes and DFL bins match the teacher's, and (when probed) the channels of each model's neck inputs."""

    s_channels: tuple
    t_channels: tuple
    reg_max: int = 16
    nc: int | None = None
    same_classes: bool = True
    same_reg_max: bool = True
    s_neck_in: tuple = ()  # (channels, stride) of each backbone output the neck reads (teacher-neck term; () = not probed)
    t_neck_in: tuple = ()


@dataclass
class KDContext:
    """Everything a KD loss may read for one batch, plus a cache of maps shared between losses (standardised teacher
    features, teacher attention, ground-truth foreground, SAM weights), each computed at most once per batch.

    student / teacher: HeadOutputs (feats [(B, C_l, H_l, W_l)], boxes (B, 4*reg_max, A), scores (B, nc, A)).
    fg_mask (B, A) bool and labels (B, A) long: the student's TaskAlignedAssigner result.
    """

    student: object
    teacher: object
    fg_mask: torch.Tensor
    labels: torch.Tensor
    batch: dict
    cfg: object
    cache: dict = field(default_factory=dict)

    def __post_init__(self):
        self.t_feats = [t.detach() for t in self.teacher.feats]

    def cached(self, key: str, make):
        if key not in self.cache:
            self.cache[key] = make()
        return self.cache[key]

    def targets(self) -> list[torch.Tensor]:
        """Teacher features as the feature losses' targets, one (B, C_l, H_l, W_l) per level: standardised per
        channel (`feat_norm=channel`) or raw (`feat_norm=none`, as Ultralytics' built-in)."""
        from .common import standardize

        norm = standardize if self.cfg.feat_norm == "channel" else torch.Tensor.float
        return self.cached("targets", lambda: [norm(t) for t in self.t_feats])

    def attention(self) -> list[torch.Tensor]:
        """Teacher spatial attention, one (B, 1, H_l, W_l) per level."""
        from .spatial_attention import spatial_attention

        return self.cached("attention", lambda: [spatial_attention(t, self.cfg.sam_temp) for t in self.t_feats])

    def feature_weights(self) -> list[torch.Tensor] | None:
        """SAM weights for the feature losses (teacher attention x foreground, or the foreground alone with
        `sam_attention=False`; foreground from the ground truth, or the teacher's class probability with
        `sam_fg=teacher`), or None when SAM weighting is off."""
        if not self.cfg.sam_weighting:
            return None
        from .spatial_attention import foreground_maps, spatial_weights, teacher_foreground

        def make():
            shapes = [tuple(t.shape[-2:]) for t in self.t_feats]
            if self.cfg.sam_fg == "teacher":
                fg = teacher_foreground(self.teacher.scores, shapes)
            else:
                fg = foreground_maps(self.batch, shapes, self.t_feats[0].shape[0])
            return spatial_weights(self.attention() if self.cfg.sam_attention else None, fg, self.cfg.sam_bg)

        return self.cached("feature_weights", make)


class KDLoss(nn.Module):
    """Interface of a registered KD loss (see the module docstring)."""

    name: str = ""  # attribute name inside the Distiller, hence the checkpoint key prefix
    order: int = 100  # position of its columns among the method's (lower first)
    columns: dict = {}  # logged column -> config key of its weight
    defaults: dict = {}  # KD keys this loss introduces -> default value
    choices: dict = {}  # key -> allowed values
    fractions: tuple = ()  # keys that must lie in [0, 1)
    shares: tuple = ()  # keys that must lie in [0, 1]
    positive: tuple = ()  # keys that must be > 0

    @classmethod
    def skip_reason(cls, column: str, pair: Pair) -> str | None:
        """Why `column` cannot be built for `pair`, or None."""
        return None

    @classmethod
    def build(cls, cfg, pair: Pair) -> KDLoss:
        raise NotImplementedError

    def compute(self, ctx: KDContext) -> dict[str, torch.Tensor]:
        raise NotImplementedError


def loss_keys() -> dict:
    """Every KD key introduced by a registered loss, with its default (shared keys must agree)."""
    out = {}
    for classes in REGISTRY.values():
        for cls in classes:
            for k, v in cls.defaults.items():
                if k in out and out[k] != v:
                    raise RuntimeError(f"KD key '{k}' has two defaults: {out[k]} and {v} ({cls.__name__})")
                out[k] = v
    return out


def constraints() -> tuple[dict, tuple, tuple, tuple]:
    """(choices, fractions, shares, positive) declared by the registered losses."""
    choices, fractions, shares, positive = {}, set(), set(), set()
    for classes in REGISTRY.values():
        for cls in classes:
            choices.update(cls.choices)
            fractions.update(cls.fractions)
            shares.update(cls.shares)
            positive.update(cls.positive)
    return choices, tuple(sorted(fractions)), tuple(sorted(shares)), tuple(sorted(positive))


def weight_key(method: str, column: str) -> str:
    """Config key of a column's weight ('fr_loss' -> 'fr', 'kd_loss' -> 'logit_kd')."""
    for cls in REGISTRY.get(method, []):
        if column in cls.columns:
            return cls.columns[column]
    return column.removesuffix("_loss")
