"""clip_jointly: the joint gradient-norm clip of student + KD modules (kd_grad_clip=joint)."""

import math

import torch

from yolo_kd.grad_clip import clip_jointly


def _params(*grads):
    ps = [torch.nn.Parameter(torch.zeros_like(g)) for g in grads]
    for p, g in zip(ps, grads):
        p.grad = g.clone()
    return ps


def test_the_joint_norm_is_clipped_and_the_directions_kept():
    a, b = torch.full((4,), 3.0), torch.full((9,), 4.0)  # norms 6 and 12: joint sqrt(180)
    ps = _params(a, b)
    norm = clip_jointly(ps, max_norm=10.0)
    assert math.isclose(float(norm), math.sqrt(180), rel_tol=1e-6)
    joint = torch.linalg.vector_norm(torch.cat([p.grad for p in ps]))
    assert math.isclose(float(joint), 10.0, rel_tol=1e-5)
    k = 10.0 / math.sqrt(180)
    assert torch.allclose(ps[0].grad, a * k) and torch.allclose(ps[1].grad, b * k)  # one factor for all


def test_the_amp_scale_is_divided_out_and_small_norms_are_untouched():
    ps = _params(torch.full((4,), 3.0))  # norm 6, scaled by 4: unscaled 1.5 < 10
    clip_jointly(ps, max_norm=10.0, scale=4.0)
    assert torch.equal(ps[0].grad, torch.full((4,), 3.0))
    for scale in (4.0, torch.tensor([4.0])):  # a float, or the GradScaler's scale tensor
        ps = _params(torch.full((4,), 30.0))  # scaled norm 60, unscaled 15 > 10: every entry x 10/15
        clip_jointly(ps, max_norm=10.0, scale=scale)
        assert torch.allclose(ps[0].grad, torch.full((4,), 20.0))


def test_an_overflow_is_left_for_the_grad_scaler():
    g = torch.tensor([1.0, float("inf"), 2.0])
    ps = _params(g, torch.full((3,), 100.0))
    clip_jointly(ps, max_norm=10.0)
    assert torch.equal(ps[0].grad, g) and torch.equal(ps[1].grad, torch.full((3,), 100.0))
