"""Teacher-assisted label assignment (`kd_assign`, yolo_kd/assignment.py) on Ultralytics' real v8DetectionLoss."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch


def _model(seed: int):
    from ultralytics.cfg import get_cfg
    from ultralytics.nn.tasks import DetectionModel

    torch.manual_seed(seed)
    m = DetectionModel("yolov8n.yaml", nc=3, verbose=False)
    m.args = get_cfg()
    return m.train()


@pytest.fixture(scope="module")
def setting():
    """A student loss with its tapped assigner, the student's and a teacher's raw predictions, and a batch."""
    from ultralytics.utils.loss import v8DetectionLoss

    from yolo_kd.assignment import AssignmentTap
    from yolo_kd.teacher import head_outputs

    torch.manual_seed(0)
    img = torch.rand(2, 3, 64, 64)
    student, teacher = _model(0), _model(1)
    loss = v8DetectionLoss(student)
    tap = AssignmentTap(loss)
    batch = {"batch_idx": torch.tensor([0.0, 0.0, 1.0]), "cls": torch.tensor([[0.0], [2.0], [1.0]]),
             "bboxes": torch.tensor([[0.3, 0.3, 0.4, 0.4], [0.7, 0.6, 0.5, 0.6], [0.5, 0.5, 0.8, 0.7]])}
    with torch.no_grad():
        s_preds, t_preds = student(img), teacher(img)
    return SimpleNamespace(loss=loss, tap=tap, batch=batch, s_preds=s_preds, t_preds=t_preds,
                           t_head=head_outputs(t_preds))


def _assign(s, preds, guide=None, share=0.0):
    s.tap.set_guide(guide, share)
    try:
        value, _ = s.loss(preds, s.batch)
    finally:
        s.tap.set_guide(None, 0.0)
    return s.tap.fg_mask.clone(), s.tap.labels.clone(), value


def test_full_share_assigns_as_the_teachers_own_predictions_would(setting):
    """share 1: the student's positives are exactly those the teacher's predictions get from the same assigner, and
    they differ from the student's own; the loss still scores the student's predictions."""
    own_fg, _, own_loss = _assign(setting, setting.s_preds)
    guided_fg, guided_labels, guided_loss = _assign(setting, setting.s_preds, setting.t_head, 1.0)
    teacher_fg, teacher_labels, teacher_loss = _assign(setting, setting.t_preds)
    assert guided_fg.any() and torch.equal(guided_fg, teacher_fg)
    assert torch.equal(guided_labels[guided_fg], teacher_labels[teacher_fg])
    assert not torch.equal(guided_fg, own_fg)
    assert not torch.allclose(guided_loss, teacher_loss) and not torch.allclose(guided_loss, own_loss)


def test_zero_share_or_no_guide_is_ultralytics_own_assignment(setting):
    own_fg, own_labels, own_loss = _assign(setting, setting.s_preds)
    for guide, share in ((setting.t_head, 0.0), (None, 1.0)):
        fg, labels, loss = _assign(setting, setting.s_preds, guide, share)
        assert torch.equal(fg, own_fg) and torch.equal(labels, own_labels) and torch.equal(loss, own_loss)
    assert setting.tap.guide is None


def test_teacher_boxes_are_decoded_as_the_students(setting):
    """Decoding a head's raw outputs gives what the loss itself decodes for its assigner: probabilities (B, A, nc) in
    [0, 1] and xyxy pixel boxes (B, A, 4) with x2 >= x1 around their anchors."""
    from ultralytics.utils.tal import make_anchors

    from yolo_kd.assignment import decoded_predictions

    scores, boxes = decoded_predictions(setting.loss, setting.t_head)
    a = setting.t_head.scores.shape[-1]
    assert scores.shape == (2, a, 3) and boxes.shape == (2, a, 4)
    assert scores.min() >= 0 and scores.max() <= 1
    assert (boxes[..., 2:] >= boxes[..., :2]).all()
    anchors, strides = make_anchors(setting.t_head.feats, setting.loss.stride, 0.5)
    centres = anchors * strides
    assert ((boxes[..., :2] <= centres + 1e-4) & (boxes[..., 2:] >= centres - 1e-4)).all()


def test_half_share_moves_the_assigners_inputs_half_way(setting):
    """The assigner receives lerp(student, teacher, share) for both scores and boxes."""
    seen = []
    inner = setting.tap.assigner
    setting.tap.assigner = lambda scores, boxes, *a, **k: seen.append((scores, boxes)) or inner(scores, boxes, *a, **k)
    try:
        _assign(setting, setting.s_preds)
        _assign(setting, setting.t_preds)
        _assign(setting, setting.s_preds, setting.t_head, 0.5)
    finally:
        setting.tap.assigner = inner
    (s_sc, s_bx), (t_sc, t_bx), (h_sc, h_bx) = seen
    assert torch.allclose(h_sc, (s_sc + t_sc) / 2, atol=1e-6) and torch.allclose(h_bx, (s_bx + t_bx) / 2, atol=1e-4)


@pytest.mark.parametrize("value, ok", [(0.0, True), (0.5, True), (1.0, True), (1.5, False), (-0.1, False)])
def test_kd_assign_is_a_share(value, ok):
    """Refused outside [0, 1] (negative values by the check every number gets, above 1 as a share)."""
    from yolo_kd.config import KDConfig, KDConfigError

    if ok:
        assert KDConfig.from_overrides({"kd_assign": value}).kd_assign == value
    else:
        with pytest.raises(KDConfigError, match=r"'kd_assign=.*' must (lie in \[0, 1\]|be a finite, non-negative)"):
            KDConfig.from_overrides({"kd_assign": value})
