"""Teacher-neck distillation: where the neck starts, the frozen teacher neck as a function, and the student's tap."""

import pytest
import torch
from ultralytics.nn.tasks import DetectionModel

from yolo_kd.config import KDConfig
from yolo_kd.distiller import Distiller
from yolo_kd.losses.teacher_neck import TeacherNeckDistillation
from yolo_kd.neck import BackboneTap, neck_inputs
from yolo_kd.teacher import Teacher, probe_channels


@pytest.mark.parametrize("cfg, expected", [("yolov8n.yaml", (10, (4, 6, 9))), ("yolo11n.yaml", (11, (4, 6, 10))),
                                           ("yolo26n.yaml", (11, (4, 6, 10)))])
def test_neck_inputs_are_the_backbone_levels_the_neck_reads(cfg, expected):
    model = DetectionModel(cfg, nc=3, verbose=False)
    assert neck_inputs(model) == expected
    _, neck_in = probe_channels(model, neck=True)
    assert [stride for _, stride in neck_in] == [8, 16, 32] and model.training  # the probe restores train mode


@pytest.mark.parametrize("cfg", ["yolov8n.yaml", "yolo26n.yaml"])
def test_teacher_neck_on_its_own_backbone_reproduces_its_outputs(cfg):
    """neck(B^T) == the teacher's forward pass; `take()` forgets what it returns, and `detach()` removes the hooks."""
    teacher = Teacher(DetectionModel(cfg, nc=3, verbose=False), torch.device("cpu"))
    tap = BackboneTap(teacher.model, teacher.neck_reads)
    tap.attach()
    tap.attach()  # idempotent: one hook per layer
    out = teacher(torch.rand(2, 3, 64, 64))
    backbone = tap.take()
    assert len(backbone) == 3 and tap.take() == [] and all(len(m._forward_hooks) == 1 for m in tap.layers)
    again = out.neck(backbone)
    assert torch.equal(again.scores, out.scores) and torch.equal(again.boxes, out.boxes)
    tap.detach()
    teacher(torch.rand(2, 3, 64, 64))
    assert tap.take() == [] and not any(m._forward_hooks for m in tap.layers)


def test_teacher_neck_term_trains_the_students_backbone_not_the_teacher():
    """Zero when the projected student backbone outputs are the teacher's; otherwise positive, with gradients into
    the student's backbone outputs and the projectors, never into the frozen teacher."""
    teacher = Teacher(DetectionModel("yolov8n.yaml", nc=3, verbose=False), torch.device("cpu"))
    tap = BackboneTap(teacher.model, teacher.neck_reads)
    tap.attach()
    out = teacher(torch.rand(2, 3, 64, 64))
    t_backbone = tap.take()
    channels = [b.shape[1] for b in t_backbone]
    loss = TeacherNeckDistillation(channels, channels)
    for proj in loss.project:  # conv1x1-ReLU-conv1x1 as the identity on non-negative inputs
        for conv in (proj[0], proj[2]):
            torch.nn.init.zeros_(conv.bias)
            conv.weight.data.copy_(torch.eye(conv.out_channels)[..., None, None])
    relu_backbone = [b.relu() for b in t_backbone]  # SiLU outputs are >= -0.28; ReLU'd so the projector is exact
    target = out.neck(relu_backbone)
    assert loss(relu_backbone, target, out.neck).item() == pytest.approx(0.0, abs=1e-5)
    s_backbone = [(b + 10 * torch.rand_like(b)).requires_grad_() for b in relu_backbone]
    value = loss(s_backbone, target, out.neck)
    value.backward()
    assert value.item() > 1e-7  # an untrained teacher's predictions move little, but they move
    assert all(b.grad is not None and b.grad.abs().sum() > 0 for b in s_backbone)
    assert all(p.grad is not None for p in loss.parameters())
    assert all(p.grad is None for p in teacher.model.parameters())


def test_teacher_neck_term_is_a_from_scratch_default_skipped_without_matching_neck_inputs():
    widths = ([64, 128, 256], [128, 256, 512])
    neck = {"s_neck_in": ((64, 8), (128, 16), (256, 32)), "t_neck_in": ((128, 8), (256, 16), (512, 32))}
    built = Distiller(KDConfig.from_overrides({}), *widths, reg_max=16, **neck)
    assert built.terms == ("fr_loss", "th_loss", "tn_loss") and len(built.tn.project) == 3
    assert "tn_loss" not in Distiller(KDConfig.from_overrides({}, finetuning=True), *widths, reg_max=16, **neck).terms
    assert "tn_loss" not in Distiller(KDConfig.from_overrides({"tn": 0}), *widths, reg_max=16, **neck).terms
    unprobed = Distiller(KDConfig.from_overrides({}), *widths, reg_max=16)
    assert "tn_loss" not in unprobed.terms and "backbone outputs" in unprobed.skipped["tn_loss"]
    other_strides = Distiller(KDConfig.from_overrides({}), *widths, reg_max=16, s_neck_in=neck["s_neck_in"],
                              t_neck_in=((64, 4), (128, 8), (256, 16)))  # a teacher neck that reads P2-P4
    assert "tn_loss" not in other_strides.terms and "strides" in other_strides.skipped["tn_loss"]
