"""Decoupled logit distillation for classification (paper idea 3; DKD, Zhao et al., CVPR 2022), for YOLO's dense
per-class sigmoid scores.

On an anchor that the student's TaskAlignedAssigner marks as foreground with class t, with logits z (nc,) and
temperature tau:

    TCKD = tau^2 * KL( Bern(sigmoid(z_t^T/tau)) || Bern(sigmoid(z_t^S/tau)) )
    NCKD = tau^2 * KL( softmax(z_{k!=t}^T/tau) || softmax(z_{k!=t}^S/tau) )

TCKD transfers how confident the teacher is in the target class, in the sigmoid's own probability space (the one NMS
thresholds). NCKD transfers the teacher's distribution over the *other* classes (which wrong classes it finds
similar), renormalised over non-target classes exactly as DKD's NCKD. For a categorical reading q = softmax(z/tau)
DKD's identity holds: KL(q^T||q^S) = KL(b^T||b^S) + (1 - q_t^T) * NCKD with b = (q_t, 1 - q_t); DKD's point is to
drop the (1 - q_t^T) factor, which silences NCKD exactly where the teacher is confident, and weight the two parts
separately (alpha, beta). Softmax over the non-target logits is shift-invariant, so NCKD never fights the hard BCE
loss that pushes all non-target sigmoid scores towards 0: it only shapes their relative order.

Background anchors (not assigned) get BGKD = mean over anchors and classes of the per-class sigmoid KL, so the
teacher's suppression of false positives is distilled as well.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .common import binary_kl


def non_target_kl(t_logits: torch.Tensor, s_logits: torch.Tensor, target: torch.Tensor, temp: float) -> torch.Tensor:
    """Per-row KL between the renormalised non-target distributions, * tau^2. Logits (N, nc), target (N,) -> (N,)."""
    keep = torch.ones_like(t_logits, dtype=torch.bool).scatter_(1, target[:, None], False)
    n, nc = t_logits.shape
    t = t_logits.float()[keep].view(n, nc - 1) / temp
    s = s_logits.float()[keep].view(n, nc - 1) / temp
    return F.kl_div(F.log_softmax(s, 1), F.log_softmax(t, 1), reduction="none", log_target=True).sum(1) * temp**2


class DecoupledLogitDistillation(nn.Module):
    """Target / non-target / background sigmoid logit distillation on assigned anchors."""

    def __init__(self, temp: float = 2.0):
        super().__init__()
        self.temp = temp

    def forward(
        self, s_scores: torch.Tensor, t_scores: torch.Tensor, fg_mask: torch.Tensor, labels: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Scores (B, nc, A) logits, fg_mask (B, A) bool, labels (B, A) assigned class -> scalar tckd, nckd, bgkd."""
        s = s_scores.permute(0, 2, 1)  # (B, A, nc)
        t = t_scores.permute(0, 2, 1)
        zero = s.sum() * 0.0  # keeps the graph for empty selections
        fg = fg_mask.bool()
        out = {"tckd": zero, "nckd": zero, "bgkd": zero}
        if fg.any():
            sf, tf, lab = s[fg], t[fg], labels[fg].long()  # (N, nc), (N,)
            st, tt = sf.gather(1, lab[:, None]), tf.gather(1, lab[:, None])
            out["tckd"] = binary_kl(tt, st, self.temp).mean()
            if s.shape[-1] > 1:
                out["nckd"] = non_target_kl(tf, sf, lab, self.temp).mean()
        if (~fg).any():
            out["bgkd"] = binary_kl(t[~fg], s[~fg], self.temp).mean()
        return out
