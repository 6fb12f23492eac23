"""The frozen teacher: loading by path with clear errors, and a forward pass that returns what distillation needs.

The teacher is never a submodule of the student, never in the EMA and never pickled: each process (and each DDP rank)
loads it from its path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ultralytics.nn.modules import Conv, DWConv
from ultralytics.nn.modules.head import Detect
from ultralytics.nn.tasks import ClassificationModel, DetectionModel, guess_model_task, load_checkpoint, yaml_model_load
from ultralytics.utils import LOGGER
from ultralytics.utils.downloads import GITHUB_ASSETS_NAMES
from ultralytics.utils.torch_utils import fuse_conv_and_bn

from .neck import BackboneTap, find_neck, run_layers


class TeacherError(ValueError):
    """The teacher cannot be used: missing, unreadable, not a detector, or incompatible with the student/data."""


@dataclass
class HeadOutputs:
    """Raw outputs of a Detect head for one batch: feats [(B, C_l, H_l, W_l)], boxes (B, 4*reg_max, A), scores
    (B, nc, A) logits. Teacher only: `head`, the frozen branch that made them, `head(feats) -> HeadOutputs` for other
    features of the same shapes (gradients flow into those features, never into the head); `neck`, the same for the
    frozen neck and head, `neck(backbone outputs the neck reads) -> HeadOutputs`; `unmapped`, set when the scores
    were mapped to the student's classes, the outputs as the head made them (its own classes). Student only:
    `backbone`, its backbone outputs that the neck reads [(B, C_j, H_j, W_j)], when the teacher-neck term records them."""

    feats: list
    boxes: torch.Tensor
    scores: torch.Tensor
    head: object = None
    unmapped: HeadOutputs | None = None
    neck: object = None
    backbone: list | None = None

    @property
    def own(self) -> HeadOutputs:
        """The outputs in the head's own class order: what `head(feats)` returns for these feats."""
        return self.unmapped or self


def detect_head(model: nn.Module) -> Detect:
    """Return the model's Detect head (the last Detect module), or raise TeacherError."""
    heads = [m for m in model.modules() if isinstance(m, Detect)]
    if not heads:
        raise TeacherError(f"{type(model).__name__} has no Detect head: only detection models can be distilled")
    return heads[-1]


def class_names(model: nn.Module) -> dict:
    """{index: name} of a detector's classes (its index as name when it carries none)."""
    return getattr(model, "names", None) or {i: str(i) for i in range(detect_head(model).nc)}


def probe_channels(model: nn.Module, channels: int = 3, neck: bool = False
                   ) -> tuple[list[int], list[tuple[int, int]]]:
    """Channels of the Detect-head inputs per level and, with `neck`, (channels, stride) of each backbone output the
    neck reads ([] for a model without a top-down neck), from one eval forward pass on a (1, channels, 64, 64) probe;
    the model's train/eval mode is restored."""
    size = 64
    found = find_neck(model) if neck else None
    tap = BackboneTap(model, found[1]) if found else None
    was_training = model.training
    p = next(model.parameters())
    try:
        if tap is not None:
            tap.attach()
        with torch.no_grad():
            feats = head_outputs(model.eval()(torch.zeros(1, channels, size, size, device=p.device, dtype=p.dtype))).feats
        neck_in = [(f.shape[1], size // f.shape[2]) for f in tap.take()] if tap is not None else []
        return [f.shape[1] for f in feats], neck_in
    finally:
        if tap is not None:
            tap.detach()
        model.train(was_training)


def head_outputs(preds, branch: str = "one2many") -> HeadOutputs:
    """Normalise any Detect output (train dict, eval (y, dict) tuple, end-to-end nesting) into HeadOutputs."""
    if isinstance(preds, tuple):
        preds = preds[1]
    if "one2many" in preds:
        preds = preds[branch]
    return HeadOutputs(preds["feats"], preds["boxes"], preds["scores"])


def _require_detection_task(path: str, task: str) -> None:
    """Refuse a teacher whose task has no Detect head (classify); detect, segment, pose and obb heads all detect."""
    if task == "classify":
        raise TeacherError(f"teacher '{path}' is a classification model: the teacher must be a detector (e.g. yolov8l.pt)")


def input_channels(model: nn.Module) -> int:
    """Image channels a model takes (its first convolution's input channels)."""
    return next(m for m in model.modules() if isinstance(m, nn.Conv2d)).in_channels


def check_channels(teacher: nn.Module, channels: int, path) -> None:
    """Refuse a teacher whose input channels differ from the data's (e.g. an RGB teacher for 1-channel data)."""
    c = input_channels(teacher)
    if c != channels:
        raise TeacherError(f"teacher '{path}' takes {c}-channel images but the data has {channels} channel(s); "
                           f"train the teacher on data with the same channels")


def load_teacher(path: str | Path, names: dict | None = None, channels: int | None = None) -> DetectionModel:
    """Load a detection model from a checkpoint path (or an official name, downloaded when online) or build one from
    a model YAML (untrained, with the data's class `names` and image `channels`); return it float32 on CPU.

    Raises:
        TeacherError: with the file name and how to provide it.
    """
    path = str(path)
    if path.endswith((".yaml", ".yml")):
        if not Path(path).exists() and not Path(path).name.startswith("yolo"):
            raise TeacherError(f"teacher model YAML '{path}' not found")
        _require_detection_task(path, guess_model_task(yaml_model_load(path)))
        LOGGER.warning(f"teacher={path} is a model YAML: the teacher is untrained (use this for plumbing tests only)")
        model = DetectionModel(path, ch=channels or 3, nc=len(names) if names else None, verbose=False).float()
        if names:
            model.names = dict(names)
        return model
    if not Path(path).exists() and Path(path).name not in GITHUB_ASSETS_NAMES:
        raise TeacherError(
            f"teacher '{path}' not found. Pass the path of a trained detector (.pt), an official name such as "
            f"'yolov8l.pt' (downloaded when online), or train a teacher first, e.g. "
            f"'yolo train model=yolov8s.yaml data=...' and use runs/detect/<name>/weights/best.pt"
        )
    try:
        model, _ = load_checkpoint(path)
    except Exception as e:
        raise TeacherError(
            f"teacher '{path}' could not be loaded ({type(e).__name__}: {e}). It must be an Ultralytics checkpoint "
            f"(.pt) on disk; offline, official weights cannot be downloaded: copy the file here or train a teacher."
        ) from e
    if not isinstance(model, nn.Module):
        raise TeacherError(f"teacher '{path}' holds no model")
    _require_detection_task(path, "classify" if isinstance(model, ClassificationModel) else guess_model_task(model))
    detect_head(model)
    if not isinstance(model, DetectionModel) or type(model).__name__ != "DetectionModel":
        LOGGER.warning(f"teacher '{path}' is a {type(model).__name__}; only its detection head is distilled")
    return model.float()


def warn_if_same_model(teacher: nn.Module, student: nn.Module, teacher_path, student_path) -> bool:
    """Warn (and return True) when the teacher is the student's own file or holds the same weights: distillation
    would then have nothing to teach."""
    same_file = student_path and Path(str(teacher_path)).resolve() == Path(str(student_path)).resolve()
    t, s = teacher.state_dict(), student.state_dict()
    same_weights = t.keys() == s.keys() and all(
        t[k].shape == s[k].shape and torch.equal(t[k].float().cpu(), s[k].float().cpu()) for k in t
    )
    if same_file or same_weights:
        LOGGER.warning(
            f"teacher '{teacher_path}' is {'the same file as' if same_file else 'identical to'} the student "
            f"'{student_path}': distillation has nothing to teach; use a larger or better-trained teacher"
        )
        return True
    return False


def check_levels(teacher: nn.Module, student: str | Path | nn.Module) -> None:
    """Raise TeacherError unless teacher and student heads have the same strides (P3/P4/P5...), so levels match.

    `student` is a model, a checkpoint path or a model YAML (built on CPU to read its strides)."""
    if not isinstance(student, nn.Module):
        student = load_checkpoint(student)[0] if str(student).endswith(".pt") else DetectionModel(str(student), verbose=False)
    t, s = detect_head(teacher).stride, detect_head(student).stride
    if t.shape != s.shape or not torch.equal(t.cpu(), s.cpu()):
        raise TeacherError(
            f"teacher head strides {t.tolist()} differ from the student's {s.tolist()}: feature levels cannot be "
            f"matched; use a teacher and student with the same detection levels"
        )


def fold_batchnorm(model: nn.Module) -> None:
    """Fold the BatchNorm of every Conv/DWConv block of a frozen, eval-mode model into its convolution with
    Ultralytics' `fuse_conv_and_bn` (the same values, fewer ops per forward pass). Ultralytics' own `model.fuse()` is
    not used: it also drops the one-to-many branch of end-to-end heads, which distillation reads."""
    for m in model.modules():
        if type(m) in (Conv, DWConv) and hasattr(m, "bn"):
            m.conv = fuse_conv_and_bn(m.conv, m.bn)
            delattr(m, "bn")
            m.forward = m.forward_fuse


class Teacher:
    """A frozen teacher in eval mode (BatchNorm folded into its convolutions) that returns the raw outputs of its Detect
    head for a batch of images: the head's input features and its class/box logits, read from the head's own output
    dict (no hooks). Only the head's own `training` flag is set during the call, so the head skips box decoding and
    end-to-end post-processing that distillation does not use; every other module stays in eval mode."""

    def __init__(self, model: nn.Module, device: torch.device):
        self.model = model.to(device).eval()
        fold_batchnorm(self.model)
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.head = detect_head(self.model)
        self.neck_start, self.neck_reads = find_neck(self.model) or (None, ())  # None: no top-down neck
        self.stride = self.head.stride
        self.nc = self.head.nc
        self.reg_max = self.head.reg_max

    @torch.no_grad()
    def __call__(self, img: torch.Tensor, branch: str = "one2many") -> HeadOutputs:
        """Run the teacher on (B, C, H, W) images; return feats [(B, C_l, H_l, W_l)], boxes (B, 4*reg_max, A) and
        scores (B, nc, A) logits (of `branch` for an end-to-end teacher), with `head` set to `self.head_on(branch)`."""
        self.head.training = True  # raw prediction dict, no decoding (children, incl. BatchNorm, stay in eval)
        try:
            out = head_outputs(self.model(img), branch)
        finally:
            self.head.training = False
        out.head = self.head_on(branch)
        out.neck = self.neck_on(branch) if self.neck_start is not None else None
        return out

    def head_on(self, branch: str = "one2many"):
        """The frozen head's `branch` as a function of features: [(B, C_l, H_l, W_l)] -> HeadOutputs (boxes, scores),
        differentiable in the features (teacher-head distillation runs the student's projected features through it)."""
        end_to_end = getattr(self.head, "one2one_cv2", None) is not None
        modules = self.head.one2one if branch == "one2one" and end_to_end else self.head.one2many

        def run(feats: list) -> HeadOutputs:
            return head_outputs(self.head.forward_head(feats, **modules))

        return run

    def neck_on(self, branch: str = "one2many"):
        """The frozen neck and head as a function of the backbone outputs they read ([(B, C_j, H_j, W_j)] in layer
        order) -> HeadOutputs of `branch`, differentiable in those inputs (teacher-neck distillation)."""
        layers = self.model.model[self.neck_start:]

        def run(backbone: list) -> HeadOutputs:
            self.head.training = True  # raw prediction dict, as in __call__
            try:
                return head_outputs(run_layers(layers, dict(zip(self.neck_reads, backbone))), branch)
            finally:
                self.head.training = False

        return run
