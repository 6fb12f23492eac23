"""Analytic checks of every KD loss module: zero when equal, positive when not, shapes, gradients, identities."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from yolo_kd.config import KDConfig, KDConfigError
from yolo_kd.distiller import Distiller
from yolo_kd.losses import (
    ChannelWiseDistillation,
    DecoupledLogitDistillation,
    FeatureAlignmentModule,
    FeatureMimic,
    FeatureResampling,
    LocalizationDistillation,
    SigmoidLogitDistillation,
    SpatialAttention,
    foreground_maps,
)
from yolo_kd.losses.common import resize_to, standardize
from yolo_kd.losses.decoupled_logit import non_target_kl
from yolo_kd.losses.fam import match_sets
from yolo_kd.losses.feature_resampling import random_mask
from yolo_kd.losses.spatial_attention import spatial_attention
from yolo_kd.teacher import HeadOutputs

WIDTHS = {"v8n": [64, 128, 256], "v8s": [128, 256, 512], "v8l": [256, 512, 512]}
# v8n -> v8s neck inputs, (channels, stride) (teacher-neck term)
NECK = {"s_neck_in": ((64, 8), (128, 16), (256, 32)), "t_neck_in": ((128, 8), (256, 16), (512, 32))}
SHAPES = [(16, 16), (8, 8), (4, 4)]


def feats(channels, b=2, grad=False):
    torch.manual_seed(0)
    return [torch.randn(b, c, h, w, requires_grad=grad) for c, (h, w) in zip(channels, SHAPES)]


def identity_(conv: nn.Conv2d):
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[:, :, 0, 0].copy_(torch.eye(conv.out_channels, conv.in_channels))
        conv.bias.zero_()


# ---------------------------------------------------------------- feature resampling / MGD
def test_feature_resampling_zero_when_generation_reproduces_teacher():
    t = feats([8, 8, 8])
    m = FeatureResampling([8, 8, 8], [8, 8, 8], mask_ratio=0.0)
    for l in range(3):
        m.generate[l] = nn.Identity()
    assert m([standardize(x) for x in t], t).item() == pytest.approx(0.0, abs=1e-6)
    assert m([standardize(x) * 2 for x in t], t).item() > 0.1


@pytest.mark.parametrize("teacher_width", [False, True])
def test_feature_resampling_maps_student_to_teacher_channels(teacher_width):
    s, t = feats(WIDTHS["v8n"], grad=True), feats(WIDTHS["v8l"])
    m = FeatureResampling(WIDTHS["v8n"], WIDTHS["v8l"], teacher_width=teacher_width)
    loss = m(s, t)
    loss.backward()
    assert loss.ndim == 0 and loss > 0 and all(x.grad is not None for x in s)
    assert m.generate[0][-1].out_channels == 256 and m.generate[0][0].in_channels == (256 if teacher_width else 64)


@pytest.mark.parametrize("size", [(8, 8), (4, 4), (16, 8)])
def test_resize_to_pools_integer_ratios_exactly_as_adaptive_pooling(size):
    x = torch.randn(2, 3, 16, 16)
    assert torch.allclose(resize_to(x, size), F.adaptive_avg_pool2d(x, size), atol=1e-6)
    assert torch.allclose(resize_to(x[..., :12, :12], (5, 5)), F.adaptive_avg_pool2d(x[..., :12, :12], (5, 5)))
    assert resize_to(x, (32, 32)).shape[-2:] == (32, 32)


def test_separable_generator_has_the_same_shapes_and_far_fewer_weights():
    s, t = feats(WIDTHS["v8n"], grad=True), feats(WIDTHS["v8l"])
    full = FeatureResampling(WIDTHS["v8n"], WIDTHS["v8l"])
    separable = FeatureResampling(WIDTHS["v8n"], WIDTHS["v8l"], generator="separable")
    loss = separable(s, t)
    loss.backward()
    assert loss.ndim == 0 and loss > 0 and all(x.grad is not None for x in s)
    depthwise = separable.generate[0][0][0]
    assert depthwise.groups == depthwise.in_channels == 64 and depthwise.kernel_size == (3, 3)
    assert separable.generate[0][-1].out_channels == 256
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert n(separable) < 0.4 * n(full)


@pytest.mark.parametrize("choice, groups, kernel", [("separable", 16, 3), ("full", 1, 3), ("pointwise", 1, 1)])
def test_fr_generator_key_selects_the_generator(choice, groups, kernel):
    from yolo_kd.losses import Pair

    pair = Pair((16, 32, 64), (32, 64, 128), 16, 3, True, True)
    gen = FeatureResampling.build(KDConfig.from_overrides({"method": "paper", "fr_generator": choice}), pair).generate[0]
    first = gen[0][0] if isinstance(gen[0], nn.Sequential) else gen[0]
    assert first.groups == groups and first.kernel_size == (kernel, kernel)
    assert gen(torch.randn(2, 16, 8, 8)).shape == (2, 32, 8, 8)


def test_pointwise_projector_on_cpu_equals_its_convolutions():
    """The CPU path (matrix products over channels) computes what the two 1x1 convolutions compute, gradients too,
    and keeps the plain Sequential's state_dict keys (checkpoints stay interchangeable)."""
    from yolo_kd.losses.common import generation_block

    torch.manual_seed(0)
    proj = generation_block(16, 48, "pointwise")
    assert list(proj.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    x = torch.randn(3, 16, 5, 7, requires_grad=True)
    target = torch.randn(3, 48, 5, 7)
    fast = proj(x)
    grads_fast = torch.autograd.grad((fast - target).pow(2).mean(), [x, *proj.parameters()])
    slow = nn.Sequential.forward(proj, x)  # the convolutions themselves
    grads_slow = torch.autograd.grad((slow - target).pow(2).mean(), [x, *proj.parameters()])
    assert fast.shape == slow.shape == (3, 48, 5, 7)
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-5)
    for a, b in zip(grads_fast, grads_slow):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_fr_generator_rejects_unknown_choices():
    from yolo_kd.config import KDConfigError

    with pytest.raises(KDConfigError, match="fr_generator"):
        KDConfig.from_overrides({"method": "paper", "fr_generator": "tiny"})


@pytest.mark.parametrize("fill", ["zero", "resample"])
def test_random_mask_drops_the_requested_fraction(fill):
    x = torch.arange(1, 1 + 4 * 64 * 64, dtype=torch.float).view(1, 4, 64, 64)
    y = random_mask(x, 0.65, fill)
    changed = (y != x).any(1).float().mean().item()
    assert 0.55 < changed < 0.72  # resampling may hit its own position occasionally
    assert random_mask(x, 0.0, fill) is x


# ---------------------------------------------------------------- SAM
def test_sam_zero_when_equal_and_positive_otherwise():
    t = feats([8, 8, 8])
    m = SpatialAttention([8, 8, 8], [8, 8, 8])
    for conv in m.align:
        identity_(conv)
    assert m(t, t).item() == pytest.approx(0.0, abs=1e-6)
    assert m([x.roll(3, dims=-1) for x in t], t).item() > 0


def test_attention_map_has_mean_one():
    a = spatial_attention(torch.randn(3, 16, 10, 12), temp=0.5)
    assert a.shape == (3, 1, 10, 12)
    assert torch.allclose(a.mean(dim=(1, 2, 3)), torch.ones(3))


def test_sam_mask_covers_every_gt_box_at_every_stride():
    torch.manual_seed(1)
    n = 40
    wh = torch.rand(n, 2) * 0.3 + 0.005  # includes boxes far smaller than a stride-32 cell
    xy = wh / 2 + torch.rand(n, 2) * (1 - wh)
    batch = {"bboxes": torch.cat([xy, wh], 1), "batch_idx": torch.randint(0, 3, (n,)).float()}
    for (h, w), mask in zip(SHAPES, foreground_maps(batch, SHAPES, 3)):
        assert mask.shape == (3, 1, h, w)
        for (x, y), (bw, bh), b in zip(xy, wh, batch["batch_idx"].long()):
            assert mask[b, 0, int(y * h), int(x * w)] == 1  # centre cell
            ys = ((torch.arange(h) + 0.5) / h - y).abs() <= bh / 2
            xs = ((torch.arange(w) + 0.5) / w - x).abs() <= bw / 2
            assert (mask[b, 0][ys][:, xs] == 1).all()  # every cell centre inside the box
    empty = foreground_maps({"bboxes": torch.zeros(0, 4), "batch_idx": torch.zeros(0)}, SHAPES, 2)
    assert all(m.sum() == 0 for m in empty)


# ---------------------------------------------------------------- decoupled logits
def test_dkd_zero_when_equal_positive_when_different():
    torch.manual_seed(0)
    s = torch.randn(2, 6, 50)
    fg = torch.rand(2, 50) > 0.7
    lab = torch.randint(0, 6, (2, 50))
    m = DecoupledLogitDistillation(temp=2.0)
    out = m(s, s, fg, lab)
    assert all(v.item() == pytest.approx(0.0, abs=1e-6) for v in out.values())
    out = m(s, s + torch.randn_like(s), fg, lab)
    assert all(v.item() > 0 for v in out.values())


def test_nckd_is_dkds_non_target_term():
    """Categorical identity: KL(q_T||q_S) = KL(b_T||b_S) + (1 - q_t^T) * NCKD / tau^2, with q = softmax(z / tau)."""
    torch.manual_seed(0)
    tau = 2.0
    zt, zs = torch.randn(7, 5), torch.randn(7, 5)
    tgt = torch.randint(0, 5, (7,))
    qt, qs = (zt / tau).softmax(1), (zs / tau).softmax(1)
    full = (qt * (qt.log() - qs.log())).sum(1)
    pt, ps = qt.gather(1, tgt[:, None]).squeeze(1), qs.gather(1, tgt[:, None]).squeeze(1)
    binary = pt * (pt / ps).log() + (1 - pt) * ((1 - pt) / (1 - ps)).log()
    nckd = non_target_kl(zt, zs, tgt, tau) / tau**2
    assert torch.allclose(full, binary + (1 - pt) * nckd, atol=1e-5)


def test_tckd_matches_binary_kl_of_target_sigmoid():
    zt, zs = torch.tensor([[[2.0], [-1.0]]]), torch.tensor([[[0.5], [0.0]]])  # (B=1, nc=2, A=1)
    out = DecoupledLogitDistillation(temp=1.0)(zs, zt, torch.tensor([[True]]), torch.tensor([[0]]))
    p, q = torch.sigmoid(torch.tensor(2.0)), torch.sigmoid(torch.tensor(0.5))
    expected = p * (p / q).log() + (1 - p) * ((1 - p) / (1 - q)).log()
    assert out["tckd"].item() == pytest.approx(expected.item(), rel=1e-5)


# ---------------------------------------------------------------- FAM
@pytest.mark.parametrize("levels", ["all", "adjacent", "same"])
def test_fam_attention_sums_to_one_and_aligns_across_levels(levels):
    s, t = feats(WIDTHS["v8n"]), feats(WIDTHS["v8l"])
    m = FeatureAlignmentModule(WIDTHS["v8n"], WIDTHS["v8l"], levels)
    for i, alpha in enumerate(m.attention(s, t)):
        assert alpha.shape == (2, len(m.matches[i]))
        assert torch.allclose(alpha.sum(1), torch.ones(2))
    assert match_sets(3, 3, "adjacent") == [[0, 1], [0, 1, 2], [1, 2]]
    assert match_sets(3, 3, "same") == [[0], [1], [2]]
    loss = m(s, t)
    assert loss.ndim == 0 and torch.isfinite(loss) and loss > 0


def test_fam_zero_when_every_aligned_level_equals_its_teacher():
    t = [torch.ones(1, 4, 8, 8) * torch.arange(64.0).view(8, 8)] * 2  # identical maps at equal resolution
    m = FeatureAlignmentModule([4, 4], [4, 4], "all")
    for conv in m.align.values():
        identity_(conv)
    assert m([standardize(x) for x in t], t).item() == pytest.approx(0.0, abs=1e-6)


# ---------------------------------------------------------------- LD and peers
def test_localization_distillation_zero_when_equal():
    b = torch.randn(2, 64, 30)
    fg = torch.rand(2, 30) > 0.5
    m = LocalizationDistillation(reg_max=16)
    assert m(b, b, fg).item() == pytest.approx(0.0, abs=1e-6)
    assert m(b + torch.randn_like(b), b, fg).item() > 0


def test_peers_zero_when_equal_positive_otherwise():
    t = feats([8, 8, 8])
    mimic, cwd = FeatureMimic([8] * 3, [8] * 3), ChannelWiseDistillation([8] * 3, [8] * 3)
    for conv in [*mimic.align, *cwd.align]:
        identity_(conv)
    assert mimic([standardize(x) for x in t], t).item() == pytest.approx(0.0, abs=1e-6)
    assert cwd(t, t).item() == pytest.approx(0.0, abs=1e-5)
    assert mimic(t, [x.flip(-1) for x in t]).item() > 0
    assert cwd(t, [x.flip(-1) for x in t]).item() > 0
    z = torch.randn(2, 6, 40)
    kd = SigmoidLogitDistillation()
    assert kd(z, z).item() == pytest.approx(0.0, abs=1e-6) and kd(z, -z).item() > 0


# ---------------------------------------------------------------- the combined loss
def fake_head(channels, reg_max=16, nc=6):
    """A frozen stand-in for a teacher's Detect head (what `Teacher.head_on` returns): a 1x1 conv per level to
    4*reg_max box and nc class logits, [(B, C_l, H_l, W_l)] -> HeadOutputs with boxes (B, 4*reg_max, A), scores (B, nc, A)."""
    convs = [nn.Conv2d(c, 4 * reg_max + nc, 1).requires_grad_(False) for c in channels]

    def run(fs):
        y = torch.cat([conv(f).flatten(2) for conv, f in zip(convs, fs)], 2)
        return HeadOutputs(fs, y[:, : 4 * reg_max], y[:, 4 * reg_max :])

    return run


def _head(channels, grad):
    f = feats(channels, grad=grad)
    a = sum(h * w for h, w in SHAPES)
    return HeadOutputs(f, torch.randn(2, 64, a, requires_grad=grad), torch.randn(2, 6, a, requires_grad=grad),
                       fake_head(channels))


@pytest.mark.parametrize("teacher", ["v8n", "v8s", "v8l"])
@pytest.mark.parametrize("method", ["paper", "mimic", "cwd", "mgd", "kd"])
def test_distiller_shapes_and_gradients(teacher, method):
    cfg = KDConfig.from_overrides({"method": method, "ld": 1.0, "kd_warmup": 0})
    d = Distiller(cfg, WIDTHS["v8n"], WIDTHS[teacher], reg_max=16)
    s, t = _head(WIDTHS["v8n"], True), _head(WIDTHS[teacher], True)
    a = s.scores.shape[-1]
    batch = {"bboxes": torch.tensor([[0.5, 0.5, 0.2, 0.3], [0.2, 0.3, 0.05, 0.05]]), "batch_idx": torch.tensor([0.0, 1.0])}
    fg = torch.zeros(2, a, dtype=torch.bool)
    fg[:, :20] = True
    terms = d(s, t, fg, torch.randint(0, 6, (2, a)), batch)
    assert terms and set(terms) == set(d.terms)
    assert all(v.ndim == 0 and torch.isfinite(v) for v in terms.values())
    sum(terms.values()).backward()
    assert any(f.grad is not None and f.grad.abs().sum() > 0 for f in s.feats + [s.scores])
    assert all(x.grad is None for x in t.feats + [t.scores, t.boxes])  # never the teacher
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in d.parameters()) or method == "kd"


def test_teacher_foreground_is_the_highest_class_probability_per_level():
    from yolo_kd.losses.spatial_attention import teacher_foreground

    scores = torch.randn(2, 6, sum(h * w for h, w in SHAPES))
    maps = teacher_foreground(scores, SHAPES)
    assert [tuple(m.shape) for m in maps] == [(2, 1, h, w) for h, w in SHAPES]
    h, w = SHAPES[0]  # level 1 starts after level 0's anchors, row-major like Ultralytics' anchors
    assert torch.allclose(maps[1][1, 0, 2, 3], scores[1, :, h * w + 2 * SHAPES[1][1] + 3].sigmoid().max())


@pytest.mark.parametrize("key,values", [("feat_norm", ("channel", "none")), ("sam_fg", ("teacher", "gt"))])
def test_feature_target_and_foreground_choices_change_the_loss(key, values):
    s, t = _head(WIDTHS["v8n"], False), _head(WIDTHS["v8s"], False)
    t.feats = [3 * f + 1 for f in t.feats]  # a scale and offset that standardisation would remove
    a = s.scores.shape[-1]
    batch = {"bboxes": torch.tensor([[0.5, 0.5, 0.4, 0.4]]), "batch_idx": torch.tensor([0.0])}
    fg, labels = torch.zeros(2, a, dtype=torch.bool), torch.zeros(2, a, dtype=torch.long)
    out = {}
    for v in values:
        cfg = KDConfig.from_overrides({"method": "paper", "kd_warmup": 0, "fr_mask": 0.0, key: v})
        torch.manual_seed(0)
        d = Distiller(cfg, WIDTHS["v8n"], WIDTHS["v8s"], reg_max=16)
        out[v] = d(s, t, fg, labels, batch)["fr_loss"].item()
    assert len(set(out.values())) == 2, out
    if key == "feat_norm":  # raw targets are about 3x larger, with a mean of 1: the loss grows
        assert out["none"] > out["channel"]


def test_sam_attention_off_leaves_the_foreground_weights_alone():
    from yolo_kd.losses.registry import KDContext
    from yolo_kd.losses.spatial_attention import teacher_foreground

    s, t = _head(WIDTHS["v8n"], False), _head(WIDTHS["v8s"], False)
    batch = {"bboxes": torch.tensor([[0.5, 0.5, 0.4, 0.4]]), "batch_idx": torch.tensor([0.0])}
    weights = {}
    for on in (True, False):
        cfg = KDConfig.from_overrides({"method": "paper", "sam_fg": "teacher", "sam_bg": 0.0, "sam_attention": on})
        weights[on] = KDContext(s, t, None, None, batch, cfg).feature_weights()
    shapes = [tuple(f.shape[-2:]) for f in t.feats]
    fg = teacher_foreground(t.scores, shapes)
    assert all(torch.equal(w, f) for w, f in zip(weights[False], fg))  # the teacher's class probability, as is
    assert all(not torch.allclose(w, f) for w, f in zip(weights[True], fg))  # A_T reshapes it


def test_batch_weight_normalisation_is_the_batch_weighted_average():
    from yolo_kd.losses.common import weighted_mse

    pred, target = torch.zeros(2, 3, 2, 2), torch.ones(2, 3, 2, 2)
    target[1] *= 3  # image 1: error 9 everywhere; image 0: error 1
    w = torch.ones(2, 1, 2, 2)
    w[1] *= 1e-6  # the teacher sees nothing in image 1
    per_image = weighted_mse(pred, target, w, "image")
    assert torch.allclose(per_image, torch.tensor([1.0, 9.0]))  # image 1 renormalised to full strength
    batch = weighted_mse(pred, target, w, "batch")
    expected = ((w * torch.tensor([1.0, 9.0]).view(2, 1, 1, 1)).sum() / w.sum()).item()
    assert batch.mean().item() == pytest.approx(expected, rel=1e-5) and batch[1] < 1e-4


def test_paper_terms_and_clip():
    """`paper` keeps the measured defaults (teacher-foreground-weighted feature distillation); `paper_all` builds every
    term of the paper's four ideas."""
    paper = Distiller(KDConfig.from_overrides({"method": "paper"}), WIDTHS["v8n"], WIDTHS["v8s"], 16, **NECK)
    assert paper.terms == ("fr_loss", "th_loss", "tn_loss")
    cfg = KDConfig.from_overrides({"kd": "paper_all"})
    d = Distiller(cfg, WIDTHS["v8n"], WIDTHS["v8s"], reg_max=16, **NECK)
    assert d.terms == ("fr_loss", "th_loss", "tn_loss", "sam_loss", "fam_loss", "tckd_loss", "nckd_loss", "bgkd_loss")
    assert not d.skipped
    big = torch.tensor(50.0, requires_grad=True)
    clipped = d.clip(big)
    clipped.backward()
    assert clipped.item() == pytest.approx(cfg.kd_clip) and big.grad.item() == pytest.approx(cfg.kd_clip / 50)


@pytest.mark.parametrize("preset,added", [("paper_with_dkd", {"tckd_loss", "nckd_loss", "bgkd_loss"}),
                                           ("paper_with_fam", {"fam_loss"}), ("paper_with_sam_transfer", {"sam_loss"}),
                                           ("paper_with_resampling", set()), ("paper_no_sam", set())])
def test_ablation_presets_change_one_idea_of_paper(preset, added):
    """Each cfg/paper_with_*.yaml adds one of the paper's ideas to the defaults; the others stay as in `paper`."""
    base = KDConfig.from_overrides({"method": "paper"}).as_dict()
    cfg = KDConfig.from_overrides({"kd": preset})
    d = Distiller(cfg, WIDTHS["v8n"], WIDTHS["v8s"], reg_max=16)
    assert set(d.terms) == {"fr_loss", "th_loss"} | added
    changed = {k for k, v in cfg.as_dict().items() if v != base[k] and k != "kd"}
    expected = {"paper_with_dkd": {"tckd", "nckd", "bgkd"}, "paper_with_fam": {"fam"},
                "paper_with_sam_transfer": {"sam", "sam_attention"}, "paper_with_resampling": {"fr_generator", "fr_mask"},
                "paper_no_sam": {"sam_weighting"}}[preset]
    assert changed == expected, changed


def test_terms_built_for_each_pair():
    """DKD needs the same classes only (a v8 teacher -> YOLO26 student keeps TCKD/NCKD/BGKD); LD needs equal reg_max;
    NCKD is not built for nc <= 2. Every skipped term comes with its reason."""
    cfg = KDConfig.from_overrides({"kd": "paper_all", "ld": 1.0})
    v8_to_26 = Distiller(cfg, WIDTHS["v8n"], WIDTHS["v8s"], reg_max=1, same_reg_max=False, nc=6)
    assert {"tckd_loss", "nckd_loss", "bgkd_loss"} <= set(v8_to_26.terms) and "ld_loss" not in v8_to_26.terms
    assert "reg_max" in v8_to_26.skipped["ld_loss"]
    other_classes = Distiller(cfg, WIDTHS["v8n"], WIDTHS["v8s"], reg_max=16, same_classes=False, **NECK)
    assert other_classes.terms == ("fr_loss", "th_loss", "tn_loss", "sam_loss", "fam_loss", "ld_loss")
    assert set(other_classes.skipped) == {"tckd_loss", "nckd_loss", "bgkd_loss"}
    two = Distiller(cfg, WIDTHS["v8n"], WIDTHS["v8s"], reg_max=16, nc=2)
    assert "nckd_loss" not in two.terms and "identically 0" in two.skipped["nckd_loss"]


@pytest.mark.parametrize("method", ["paper", "mimic", "cwd", "mgd", "kd"])
def test_kd_state_dict_holds_each_tensor_once(method):
    """No module is registered twice (the FR generator once was, as `uses_sam_weights`)."""
    d = Distiller(KDConfig.from_overrides({"method": method, "ld": 1.0}), WIDTHS["v8n"], WIDTHS["v8s"], reg_max=16)
    values = sum(v.numel() for v in d.state_dict().values())
    assert values == sum(p.numel() for p in d.parameters()) + sum(b.numel() for b in d.buffers())


def test_kd_schedule():
    from yolo_kd.schedule import kd_scale

    assert kd_scale(0, 30, warmup=0.1) == 0 and kd_scale(1.5, 30, warmup=0.1) == pytest.approx(0.5)
    assert kd_scale(3, 30, warmup=0.1) == 1 and kd_scale(29.9, 30, warmup=0.1) == 1
    assert kd_scale(5, 30) == 1  # no warm-up
    assert kd_scale(20, 30, off_last=10) == 0 and kd_scale(19.9, 30, off_last=10) == 1
    assert kd_scale(10, 20, schedule="cosine") == pytest.approx(0.5) and kd_scale(0.01, 20, schedule="cosine") > 0.99
    assert kd_scale(15, 30, schedule="cosine", off_last=10) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.75)))
    assert kd_scale(10, 20, schedule="cosine", final=0.4) == pytest.approx(0.7)  # 0.4 + 0.6 * 0.5
    assert kd_scale(19.999, 20, schedule="cosine", final=0.4) == pytest.approx(0.4, abs=1e-6)
    assert kd_scale(10, 20, final=0.4) == 1  # constant ignores it


def test_kd_hold_terms_skip_the_decay():
    """`kd_hold=th`: the teacher-head term is weighted by `held_scale` (warm-up only), the others by the scheduled
    `scale`; a key that weighs no term is refused in one line."""
    s, t = _head(WIDTHS["v8n"], False), _head(WIDTHS["v8s"], False)
    a = s.scores.shape[-1]
    fg, labels = torch.zeros(2, a, dtype=torch.bool), torch.zeros(2, a, dtype=torch.long)
    d = Distiller(KDConfig.from_overrides({"th": 7, "kd_hold": "th"}), WIDTHS["v8n"], WIDTHS["v8s"], reg_max=16)
    assert d.held == {"th_loss"} and d.cfg.kd_hold == "th"
    full = d(s, t, fg, labels, {})
    decayed = d(s, t, fg, labels, {}, scale=0.25, held_scale=1.0)
    assert torch.allclose(decayed["fr_loss"], 0.25 * full["fr_loss"]) and torch.allclose(decayed["th_loss"], full["th_loss"])
    assert not Distiller(KDConfig.from_overrides({"th": 7}), WIDTHS["v8n"], WIDTHS["v8s"], reg_max=16).held
    idle = Distiller(KDConfig.from_overrides({"th": 0, "kd_hold": "th"}), WIDTHS["v8n"], WIDTHS["v8s"], reg_max=16)
    assert not idle.held and idle.idle_holds == ("th",) and not d.idle_holds
    assert KDConfig.from_overrides({"kd_hold": ["th", " fr"]}).held == ("th", "fr")
    with pytest.raises(KDConfigError, match="'thh' is not the weight key of a KD term.*'th'"):
        KDConfig.from_overrides({"kd_hold": "thh"})


def test_finetuning_defaults_apply_below_presets_and_explicit_keys(tmp_path):
    from yolo_kd.config import KDConfigError, starts_from_weights

    dkd = {"tckd": 1.0, "nckd": 2.0, "bgkd": 0.5}

    def logit_weights(kd, finetuning):
        cfg = KDConfig.from_overrides(kd, finetuning=finetuning)
        return {k: getattr(cfg, k) for k in dkd}

    assert logit_weights({}, False) == dict.fromkeys(dkd, 0.0)  # from scratch: off
    assert logit_weights({}, True) == dkd  # fine-tuning: cfg/finetune.yaml
    assert logit_weights({"tckd": 0.3}, True) == {**dkd, "tckd": 0.3}  # explicit keys win
    assert logit_weights({"kd": "paper_no_sam"}, True) == dkd  # a preset without these keys keeps them
    assert logit_weights({"kd_finetune": ""}, True) == dict.fromkeys(dkd, 0.0)  # switched off
    scratch, finetune = KDConfig.from_overrides({}), KDConfig.from_overrides({}, finetuning=True)
    # the KD ramp: none from scratch (the LR warm-up ramps), a tenth of the epochs when fine-tuning
    assert (scratch.kd_warmup, finetune.kd_warmup) == (0.0, 0.1)
    # the KD schedule: the cosine decay in both regimes (from scratch: docs/tune64/bench-sized.md)
    assert (scratch.kd_schedule, finetune.kd_schedule) == ("cosine", "cosine")
    # the gradient clip: student + KD modules together from scratch, the student alone as fine-tuning was measured
    assert (scratch.kd_grad_clip, finetune.kd_grad_clip) == ("joint", "student")
    # the feature targets: raw from scratch (docs/tune64-b-strong-gpu2), standardised as fine-tuning was measured
    assert (scratch.feat_norm, finetune.feat_norm) == ("none", "channel")
    own = tmp_path / "ft.yaml"
    own.write_text("nckd: 0.0\nmethod: cwd\n")
    cfg = KDConfig.from_overrides({"kd_finetune": str(own)}, finetuning=True)
    assert (cfg.nckd, cfg.tckd, cfg.method) == (0.0, 0.0, "paper")  # its method is not applied
    with pytest.raises(KDConfigError, match="'missing' not found"):
        KDConfig.from_overrides({"kd_finetune": "missing"})  # checked from scratch too
    assert starts_from_weights({"model": "a/best.pt"}) and starts_from_weights({"model": "yolov8n.yaml", "pretrained": "w.pt"})
    assert not starts_from_weights({"model": "yolov8n.yaml", "pretrained": True})


def test_near_constant_channel_does_not_dominate():
    x = torch.randn(4, 8, 6, 6)
    x[:, 0] = 3.0 + 1e-4 * torch.randn(4, 6, 6)  # a near-flat channel
    z = standardize(x)
    assert z[:, 0].abs().max() < 0.01 < z[:, 1:].abs().mean()
    assert torch.allclose(z[:, 1:].mean(dim=(0, 2, 3)), torch.zeros(7), atol=1e-5)  # per channel over N, H, W
    assert torch.allclose(z[:, 1:].std(dim=(0, 2, 3), correction=0), torch.ones(7), atol=0.01)


def test_spatial_attention_is_scale_free():
    x = torch.randn(2, 16, 8, 8)
    for k in (1e-3, 0.1, 37.0):
        assert torch.allclose(spatial_attention(x * k, 0.5), spatial_attention(x, 0.5), atol=1e-5)


@pytest.mark.parametrize("cfg", ["yolov8n.yaml", "yolo26n.yaml"])
def test_teacher_reads_raw_head_outputs_without_decoding(cfg):
    """The teacher's features and logits are those of a plain eval forward pass of the unfolded model (BatchNorm folded
    into the convolutions changes no value), taken from the head's own output dict, with every branch of the head
    kept; the head is back in eval mode afterwards."""
    import copy

    from ultralytics.nn.tasks import DetectionModel

    from yolo_kd.teacher import Teacher, head_outputs

    model = DetectionModel(cfg, nc=3, verbose=False)
    for m in model.modules():  # non-trivial BatchNorm statistics, so that a wrong fold would show
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5), m.running_var.uniform_(0.5, 2.0), m.weight.data.uniform_(0.5, 1.5)
    unfolded = copy.deepcopy(model).eval()
    x = torch.rand(2, 3, 64, 64)
    teacher = Teacher(model, torch.device("cpu"))
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    out, ref = teacher(x), head_outputs(unfolded(x))
    assert all(torch.allclose(a, b, atol=1e-4, rtol=1e-4) for a, b in zip(out.feats, ref.feats))
    assert torch.allclose(out.scores, ref.scores, atol=1e-4, rtol=1e-4)
    assert torch.allclose(out.boxes, ref.boxes, atol=1e-4, rtol=1e-4)
    if cfg.startswith("yolo26"):  # end-to-end head: the one-to-many branch that distillation reads is still there
        ref_o2m, out_o2m = head_outputs(unfolded(x), "one2many"), teacher(x, "one2many")
        assert torch.allclose(out_o2m.scores, ref_o2m.scores, atol=1e-4, rtol=1e-4)
    assert not teacher.head.training and not any(m.training for m in model.modules())


# ---------------------------------------------------------------- no host synchronisation
SYNC_OPS = {"_local_scalar_dense", "item", "is_nonzero", "nonzero", "masked_select", "equal", "unique",
            "_unique2", "unique_consecutive", "unique_dim", "repeat_interleave"}


def _recording_syncs():
    """A dispatch mode that records every op which, on CUDA, makes the host wait for the device: reading a value
    (.item(), bool(), int()), and ops whose output shape depends on values (nonzero, masked_select, boolean-mask
    indexing, unique, ...). A CPU proxy for `torch.cuda.set_sync_debug_mode('error')`."""
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten

    class SyncRecorder(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.syncs = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            name = func.overloadpacket.__name__
            bool_index = name.startswith("index") and any(
                isinstance(a, torch.Tensor) and a.dtype == torch.bool for a in tree_flatten(args[1:])[0])
            if name in SYNC_OPS or bool_index:
                import traceback

                where = [f for f in traceback.extract_stack()[:-1] if "yolo_kd" in f.filename]
                self.syncs.append(f"{name} at {where[-1].filename.split('/')[-1]}:{where[-1].lineno}" if where else name)
            return func(*args, **(kwargs or {}))

    return SyncRecorder()


@pytest.mark.parametrize("method", ["paper", "mimic", "cwd", "mgd", "kd"])
def test_kd_step_has_no_host_sync(method):
    """KD forward and backward, the NaN guard and the budget of the criterion never wait for the device."""
    from yolo_kd.criterion import KDCriterion

    cfg = KDConfig.from_overrides({"method": method, "ld": 1.0})
    d = Distiller(cfg, WIDTHS["v8n"], WIDTHS["v8s"], reg_max=16, nc=6)
    s, t = _head(WIDTHS["v8n"], True), _head(WIDTHS["v8s"], False)
    a = s.scores.shape[-1]
    batch = {"bboxes": torch.tensor([[0.5, 0.5, 0.2, 0.3]]), "batch_idx": torch.tensor([0.0]), "img": torch.zeros(2, 3, 8, 8)}
    fg = torch.zeros(2, a, dtype=torch.bool)
    fg[0, :5] = True

    class Base:  # stands in for Ultralytics' loss (which avoids syncs itself) and its assigner
        assigner = None

        def __call__(self, preds, batch):
            crit.tap.fg_mask, crit.tap.labels = fg, torch.randint(0, 6, (2, a))
            return preds["scores"].sum() * torch.ones(3) * 1e-3, {"box_loss": torch.tensor(1.0)}

    crit = KDCriterion(Base(), lambda img, branch: t, d, budget=1.0)
    preds = {"feats": s.feats, "boxes": s.boxes, "scores": s.scores}
    with _recording_syncs() as rec:
        loss, items = crit(preds, batch)
        loss.sum().backward()
    assert rec.syncs == [], rec.syncs
    assert items["kd_ratio"] <= 1.0 + 1e-6


def test_fam_pairs_and_weights_are_indexed_right():
    """Distinct channels and resolutions at every level: FAM's loss equals an independent computation of
    mean_i sum_j alpha_ij * mse(align_ij(S_i), std(T_j)), so a mis-indexed pair or a swapped alpha fails."""
    torch.manual_seed(0)
    s_ch, t_ch = [8, 12, 16], [10, 14, 18]
    s = [torch.randn(2, c, 16 // 2**i, 16 // 2**i) for i, c in enumerate(s_ch)]
    t = [torch.randn(2, c, 16 // 2**i, 16 // 2**i) * (i + 1) + i for i, c in enumerate(t_ch)]
    m = FeatureAlignmentModule(s_ch, t_ch, "all")
    expected = []
    for i, si in enumerate(s):
        q = m.query[i](si.mean(dim=(2, 3)))
        alpha = torch.stack([(q * m.key[j](tj.mean(dim=(2, 3)))).sum(1) for j, tj in enumerate(t)], 1).mul(m.scale).softmax(1)
        per_pair = []
        for j, tj in enumerate(t):
            aligned = F.interpolate(m.align[f"{i}_{j}"](si), size=tj.shape[-2:], mode="bilinear", align_corners=False) \
                if si.shape[-1] < tj.shape[-1] else F.adaptive_avg_pool2d(m.align[f"{i}_{j}"](si), tj.shape[-2:])
            per_pair.append((aligned - standardize(tj)).pow(2).mean(dim=(1, 2, 3)))
        expected.append((alpha * torch.stack(per_pair, 1)).sum(1).mean())
    assert m(s, t).item() == pytest.approx(torch.stack(expected).mean().item(), rel=1e-4)


def test_a_registered_loss_is_a_method_with_keys_columns_and_validation():
    """One class and one @register line: the method, its keys (defaults and constraints), the column and the
    Distiller all follow; nothing else is edited."""
    from yolo_kd.config import KDConfigError, split_overrides
    from yolo_kd.losses.registry import REGISTRY, KDLoss, register

    @register("toy")
    class Toy(KDLoss):
        name, columns, defaults, positive = "toy", {"toy_loss": "toy"}, {"toy": 1.0, "toy_temp": 3.0}, ("toy_temp",)

        def __init__(self, n):
            super().__init__()
            self.w = nn.Parameter(torch.ones(n))

        @classmethod
        def build(cls, cfg, pair):
            return cls(len(pair.s_channels))

        def compute(self, ctx):
            return {"toy_loss": self.w.sum() * ctx.t_feats[0].mean() * 0 + self.w.sum()}

    try:
        _, kd = split_overrides({"method": "toy", "toy": 2.0})
        cfg = KDConfig.from_overrides(kd)
        d = Distiller(cfg, WIDTHS["v8n"], WIDTHS["v8s"], reg_max=16)
        assert d.terms == ("toy_loss",) and isinstance(d.toy, Toy) and "toy.w" in d.state_dict()
        s, t = _head(WIDTHS["v8n"], True), _head(WIDTHS["v8s"], False)
        out = d(s, t, torch.zeros(2, s.scores.shape[-1], dtype=torch.bool), torch.zeros(2, s.scores.shape[-1]), {})
        assert out["toy_loss"].item() == pytest.approx(2.0 * 3)  # weight 2 x sum of 3 ones
        with pytest.raises(KDConfigError, match="toy_temp=0.0' must be > 0"):
            KDConfig.from_overrides({"method": "toy", "toy_temp": 0})
    finally:
        REGISTRY.pop("toy")


# ---------------------------------------------------------------- class-mapped teachers
def test_class_map_by_name_rename_and_partial():
    from yolo_kd.classmap import resolve_class_map
    from yolo_kd.config import KDConfigError

    teacher = {0: "person", 1: "bicycle", 2: "car", 3: "dog"}
    m = resolve_class_map(teacher, {0: "dog", 1: "person", 2: "car"})
    assert m.index == (3, 0, 2) and not m.identity and m.describe().startswith("3/4 teacher classes mapped: dog->0")
    assert resolve_class_map(teacher, {0: "automobile", 1: "dog"}, "{automobile: car}").index == (2, 3)
    assert resolve_class_map(teacher, ["person", "truck"]).index == (0, -1)  # partial: truck learns from labels only
    assert resolve_class_map(teacher, ["a", "b"]) is None
    assert resolve_class_map(teacher, list(teacher.values())).identity
    with pytest.raises(KDConfigError, match="'lorry' is not a teacher class"):
        resolve_class_map(teacher, ["truck"], {"truck": "lorry"})


def test_distiller_reads_teacher_scores_of_mapped_classes():
    """Teacher with 4 classes, student with 3 in another order (one unmapped): the logit terms see the teacher's
    scores of the mapped classes in the student's order, and are exactly 0 when those equal the student's."""
    cfg = KDConfig.from_overrides({"kd": "paper_with_dkd", "fr": 0, "th": 0})
    d = Distiller(cfg, WIDTHS["v8n"], WIDTHS["v8s"], reg_max=16, nc=3, class_index=(3, 0, -1))
    s, t = _head(WIDTHS["v8n"], False), _head(WIDTHS["v8s"], False)
    a = s.scores.shape[-1]
    s = HeadOutputs(s.feats, s.boxes, torch.randn(2, 3, a))
    t_scores = torch.randn(2, 4, a)
    t_scores[:, 3], t_scores[:, 0] = s.scores[:, 0], s.scores[:, 1]  # mapped teacher classes equal the student's
    t = HeadOutputs(t.feats, t.boxes, t_scores)
    fg = torch.rand(2, a) > 0.5
    out = d(s, t, fg, torch.randint(0, 3, (2, a)), {})
    assert all(v.item() == pytest.approx(0.0, abs=1e-6) for v in out.values())
    t_scores[:, 3] += 1.0  # the teacher's 'student class 0' differs now
    assert d(s, HeadOutputs(t.feats, t.boxes, t_scores), fg, torch.randint(0, 3, (2, a)), {})["bgkd_loss"] > 0


@pytest.mark.parametrize("cfg", ["yolov8n.yaml", "yolo26n.yaml"])
def test_teacher_head_distillation_through_the_frozen_teacher_head(cfg):
    """`th`: zero when the projected student features are the teacher's, positive otherwise; its gradient reaches the
    student's features and the projector, never the frozen teacher head (DFL head, and a reg_max=1 YOLO26 head)."""
    from ultralytics.nn.tasks import DetectionModel

    from yolo_kd.losses.teacher_head import TeacherHeadDistillation
    from yolo_kd.teacher import Teacher

    teacher = Teacher(DetectionModel(cfg, nc=3, verbose=False), torch.device("cpu"))
    out = teacher(torch.rand(2, 3, 64, 64))
    channels = [f.shape[1] for f in out.feats]
    loss = TeacherHeadDistillation(channels, channels)
    for proj in loss.project:  # conv1x1-ReLU-conv1x1 as the identity on non-negative inputs
        identity_(proj[0]), identity_(proj[2])
    t_feats = [f.relu() for f in out.feats]  # SiLU outputs are >= -0.28; ReLU'd so the identity projector is exact
    target = out.head(t_feats)
    assert loss(t_feats, target, out.head).item() == pytest.approx(0.0, abs=1e-5)
    s_feats = [(f + 3 * torch.rand_like(f)).requires_grad_() for f in t_feats]
    value = loss(s_feats, target, out.head)
    assert value.item() > 1e-4
    value.backward()
    assert all(f.grad is not None and f.grad.abs().sum() > 0 for f in s_feats)
    assert all(p.grad is not None for p in loss.parameters())
    assert all(p.grad is None for p in teacher.model.parameters())


def test_teacher_head_term_reuses_the_teachers_own_outputs_as_targets():
    """The teacher's forward pass already made head(T): the term runs the frozen head once per batch (on the student's
    projected features), and with a class map its targets are the teacher's unmapped scores (all of its classes)."""
    calls = []
    head = fake_head(WIDTHS["v8s"], nc=8)

    def counting_head(fs):
        calls.append(len(fs))
        return head(fs)

    t_feats = feats(WIDTHS["v8s"], grad=False)
    t = head(t_feats)
    t.head = counting_head
    s = _head(WIDTHS["v8n"], False)
    a = s.scores.shape[-1]
    fg, labels = torch.zeros(2, a, dtype=torch.bool), torch.zeros(2, a, dtype=torch.long)
    d = Distiller(KDConfig.from_overrides({"fr": 0, "th": 7}), WIDTHS["v8n"], WIDTHS["v8s"], reg_max=16, nc=6, t_nc=8,
                  class_index=(7, 0, 1, 2, 3, -1))
    value = d(s, t, fg, labels, {})["th_loss"]
    assert torch.isfinite(value) and value > 0 and calls == [3]  # one head pass, on the three student levels
    mapped = d.in_student_classes(s, t)
    assert mapped.scores.shape[1] == 6 and mapped.own is t and mapped.own.scores.shape[1] == 8


def test_teacher_pass_share_sends_only_the_first_images_through_the_teacher():
    """`teacher_pass_share=0.5`: the teacher-head term runs the frozen head on the first half of the batch only, and
    its value is the term's loss on those images; shares outside (0, 1] are refused."""
    from yolo_kd.losses.teacher_head import first

    batches = []
    head = fake_head(WIDTHS["v8s"])

    def recording_head(fs):
        batches.append(fs[0].shape[0])
        return head(fs)

    t = head(feats(WIDTHS["v8s"], grad=False))
    t.head = recording_head
    s = _head(WIDTHS["v8n"], True)
    a = s.scores.shape[-1]
    fg, labels = torch.zeros(2, a, dtype=torch.bool), torch.zeros(2, a, dtype=torch.long)
    d = Distiller(KDConfig.from_overrides({"fr": 0, "th": 1, "teacher_pass_share": 0.5}), WIDTHS["v8n"], WIDTHS["v8s"],
                  reg_max=16)
    value = d(s, t, fg, labels, {})["th_loss"]
    assert batches == [1]
    first_image = HeadOutputs([f[:1] for f in t.feats], t.boxes[:1], t.scores[:1])
    assert torch.allclose(value, d.th([f[:1] for f in s.feats], first_image, head))
    value.backward()
    assert s.feats[0].grad[:1].abs().sum() > 0 and s.feats[0].grad[1:].abs().sum() == 0
    whole = Distiller(KDConfig.from_overrides({"fr": 0, "th": 1}), WIDTHS["v8n"], WIDTHS["v8s"], reg_max=16)
    whole.load_state_dict(d.state_dict())
    batches.clear()
    assert not torch.allclose(whole(s, t, fg, labels, {})["th_loss"], value) and batches == [2]
    assert first(s.feats, 2) is s.feats  # the default slices nothing: its autograd graph, and its runs, stay as before
    for share in (0, 1.5):
        with pytest.raises(KDConfigError, match="teacher_pass_share"):
            KDConfig.from_overrides({"teacher_pass_share": share})


def test_teacher_head_term_can_share_the_fr_projector():
    """`th_projector=fr`: no projector of its own; the teacher head reads FR's G(S_l), so the head term's gradient
    reaches FR's generator. With a masked FR (no whole-map G(S_l)) it keeps its own projector."""
    s, t = _head(WIDTHS["v8n"], False), _head(WIDTHS["v8s"], False)
    a = s.scores.shape[-1]
    fg, labels = torch.zeros(2, a, dtype=torch.bool), torch.zeros(2, a, dtype=torch.long)
    shared = Distiller(KDConfig.from_overrides({"th": 7, "th_projector": "fr"}), WIDTHS["v8n"], WIDTHS["v8s"], reg_max=16)
    assert shared.th.project is None
    own = Distiller(KDConfig.from_overrides({"th": 7}), WIDTHS["v8n"], WIDTHS["v8s"], reg_max=16)
    assert sum(p.numel() for p in own.parameters()) > sum(p.numel() for p in shared.parameters())
    shared(s, t, fg, labels, {})["th_loss"].backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in shared.fr.parameters())
    expected = shared.th(s.feats, t, t.head, shared.fr.generated(s.feats))
    assert torch.allclose(shared(s, t, fg, labels, {})["th_loss"], expected * shared.weights["th_loss"])
    masked = Distiller(KDConfig.from_overrides({"th": 7, "th_projector": "fr", "fr_mask": 0.5}), WIDTHS["v8n"], WIDTHS["v8s"],
                       reg_max=16)
    assert masked.th.project is not None


def test_teacher_head_term_is_a_from_scratch_default_and_a_fine_tuning_option():
    """On from scratch (docs/bench-cpu/teacher-head-20/), off when fine-tuning unless `th` is set."""
    assert Distiller(KDConfig.from_overrides({}), WIDTHS["v8n"], WIDTHS["v8s"], reg_max=16).terms == ("fr_loss", "th_loss")
    assert Distiller(KDConfig.from_overrides({"th": 0}), WIDTHS["v8n"], WIDTHS["v8s"], reg_max=16).terms == ("fr_loss",)
    finetuning = Distiller(KDConfig.from_overrides({}, finetuning=True), WIDTHS["v8n"], WIDTHS["v8s"], reg_max=16)
    assert "th_loss" not in finetuning.terms and "fr_loss" in finetuning.terms
    assert "th_loss" in Distiller(KDConfig.from_overrides({"th": 7}, finetuning=True), WIDTHS["v8n"], WIDTHS["v8s"],
                                  reg_max=16).terms


def test_teacher_head_term_reads_the_teacher_heads_dfl_bins_not_the_students():
    """A YOLOv8 teacher (16 DFL bins) for a YOLO26 student (reg_max 1): the head term splits the teacher head's box
    outputs by the teacher's bins."""
    cfg = KDConfig.from_overrides({"fr": 0, "th": 7})
    yolo26 = Distiller(cfg, WIDTHS["v8n"], WIDTHS["v8s"], reg_max=1, same_reg_max=False, nc=6)
    yolov8 = Distiller(cfg, WIDTHS["v8n"], WIDTHS["v8s"], reg_max=16, nc=6)
    yolov8.load_state_dict(yolo26.state_dict())
    s, t = _head(WIDTHS["v8n"], False), _head(WIDTHS["v8s"], False)
    a = s.scores.shape[-1]
    fg, labels = torch.zeros(2, a, dtype=torch.bool), torch.zeros(2, a, dtype=torch.long)
    with_26 = yolo26(HeadOutputs(s.feats, torch.randn(2, 4, a), s.scores), t, fg, labels, {})["th_loss"]
    with_v8 = yolov8(s, t, fg, labels, {})["th_loss"]  # the same teacher head, the same projectors
    assert torch.isfinite(with_26) and with_26 > 0 and torch.allclose(with_26, with_v8)
