"""Small tensor helpers shared by the KD losses. Shapes: features (B, C, H, W), spatial weights (B, 1, H, W)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def standardize(x: torch.Tensor, rel_eps: float = 1e-2) -> torch.Tensor:
    """Zero-mean, unit-variance per channel over N, H, W (as PKD), so losses do not depend on the feature scale of a
    model family, its channel count or resolution. (B, C, H, W) -> same, float32.

    The variance floor is relative: eps = rel_eps * mean channel variance (+1e-12), so a near-constant channel
    (std 1e-4 beside channels of std 1) is scaled by about 1/sqrt(rel_eps) = 10, not blown up to unit variance, and
    small P5 maps (16 positions at 128 px) get batch-wide statistics."""
    x = x.float()
    var, mean = torch.var_mean(x, dim=(0, 2, 3), keepdim=True, correction=0)  # (1, C, 1, 1); one pass
    eps = rel_eps * var.mean() + 1e-12
    return (x - mean) * torch.rsqrt(var + eps)


def weighted_mse(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None,
                 norm: str = "image") -> torch.Tensor:
    """Channel-mean squared error averaged over positions with `weight` (B, 1, H, W); returns (B,) per sample.
    `norm="image"` divides each image's weighted sum by its own weight sum; `norm="batch"` by the batch's mean weight
    sum (as Ultralytics' built-in), so the mean over the batch is the batch-weighted average and an image whose
    weights are all near 0 contributes near 0 instead of being renormalised to full strength."""
    err = (pred.float() - target.float()).pow(2).mean(1, keepdim=True)  # (B, 1, H, W)
    if weight is None:
        return err.mean(dim=(1, 2, 3))
    w = weight.float()
    total = w.sum(dim=(1, 2, 3))
    return (err * w).sum(dim=(1, 2, 3)) / (total.mean() if norm == "batch" else total).clamp_min(1e-12)


def resize_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bring (B, C, H, W) to spatial `size`: average pooling when shrinking, bilinear interpolation when growing."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    h, w = x.shape[-2:]
    if h % size[0] == 0 and w % size[1] == 0:  # integer ratio (detection levels): plain pooling, same values, faster
        return F.avg_pool2d(x, (h // size[0], w // size[1]))
    if h >= size[0] and w >= size[1]:
        return F.adaptive_avg_pool2d(x, size)
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def binary_kl(t_logits: torch.Tensor, s_logits: torch.Tensor, temp: float) -> torch.Tensor:
    """Element-wise KL(Bern(sigmoid(t/T)) || Bern(sigmoid(s/T))) * T^2, float32, same shape as the inputs."""
    t, s = t_logits.float() / temp, s_logits.float() / temp
    p = t.sigmoid()
    # log p - log q written with logsigmoid for stability: KL = p(ls(t)-ls(s)) + (1-p)(ls(-t)-ls(-s))
    kl = p * (F.logsigmoid(t) - F.logsigmoid(s)) + (1 - p) * (F.logsigmoid(-t) - F.logsigmoid(-s))
    return kl * temp**2


def dfl_edge_kl(s_boxes: torch.Tensor, t_boxes: torch.Tensor, reg_max: int, temp: float = 1.0) -> torch.Tensor:
    """KL(softmax(d^T/T) || softmax(d^S/T)) of DFL box-edge distributions, mean over the 4 edges, float32:
    boxes (B, 4*reg_max, A) raw bin logits -> (B, A) (no T^2 factor)."""
    b, _, a = s_boxes.shape
    s = s_boxes.float().reshape(b, 4, reg_max, a) / temp
    t = t_boxes.float().reshape(b, 4, reg_max, a) / temp
    return F.kl_div(F.log_softmax(s, 2), F.log_softmax(t, 2), reduction="none", log_target=True).sum(2).mean(1)


def conv1x1(c_in: int, c_out: int) -> nn.Conv2d:
    """Channel adapter (B, c_in, H, W) -> (B, c_out, H, W)."""
    return nn.Conv2d(c_in, c_out, kernel_size=1)


class PointwiseProjector(nn.Sequential):
    """conv1x1-ReLU-conv1x1, (B, c, H, W) -> (B, c_out, H, W). Same modules and state_dict keys as the plain
    nn.Sequential; on the CPU the two convolutions run as matrix products over the channels (the same arithmetic:
    oneDNN's 1x1 convolution takes about twice as long forward and backward at detection-head shapes, 11.2 against
    6.3 ms for the three levels of a yolov8s teacher at 64 px, batch 16). Returns a channels-last view there."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu":
            return super().forward(x)
        first, act, last = self
        h = F.linear(x.permute(0, 2, 3, 1), first.weight.flatten(1), first.bias)  # (B, H, W, width)
        return F.linear(act(h), last.weight.flatten(1), last.bias).permute(0, 3, 1, 2)


def generation_block(c: int, c_out: int | None = None, kind: str = "full") -> nn.Sequential:
    """MGD generation block. (B, c, H, W) -> (B, c_out, H, W): conv3x3-ReLU-conv3x3 at width c when c_out is None
    (MGD's design), else conv3x3-ReLU-conv1x1 whose last layer projects to c_out (cheap when c << c_out).
    kind `separable` factorises each conv3x3 into a depthwise conv3x3 and a conv1x1 (about 1/6 of the multiply-adds at
    c = 64, 1/8 at c = 256); `pointwise` is conv1x1-ReLU-conv1x1 (c -> c_out -> c_out), the projector of
    Ultralytics' built-in distillation: no spatial context, so each position must carry the teacher's feature itself."""
    if kind == "pointwise":
        width = c_out or c
        return PointwiseProjector(nn.Conv2d(c, width, 1), nn.ReLU(inplace=True), nn.Conv2d(width, width, 1))

    def conv3x3(c_in: int, c_o: int) -> nn.Module:
        if kind != "separable":
            return nn.Conv2d(c_in, c_o, 3, padding=1)
        return nn.Sequential(nn.Conv2d(c_in, c_in, 3, padding=1, groups=c_in), nn.Conv2d(c_in, c_o, 1))

    if c_out is None:
        return nn.Sequential(conv3x3(c, c), nn.ReLU(inplace=True), conv3x3(c, c))
    return nn.Sequential(conv3x3(c, c), nn.ReLU(inplace=True), nn.Conv2d(c, c_out, 1))
