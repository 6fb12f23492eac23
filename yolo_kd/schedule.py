"""When distillation acts: the KD weight multiplier over training (warm-up, decay, KD-free final epochs).

    scale(e) = ramp(e) * decay(e)   for e < E - off_last, else 0
    ramp(e)  = min(1, e / (warmup * E))                  (linear warm-up over a fraction of the epochs)
    decay(e) = 1 (constant)  or  final + (1 - final) * (1 + cos(pi * e / (E - off_last))) / 2  (cosine)

with e the fractional number of epochs done and E the number of epochs; `final` is the share of the KD weight that
the cosine decay keeps at its end (0: decays to 0, as Ultralytics' `lrf` does for the learning rate). A term named in
`kd_hold` skips the decay: it gets ramp(e) alone (`kd_scale(..., schedule="constant")`). The final KD-free epochs
follow RTMDet, which stops auxiliary losses for its last no-mosaic epochs so the student settles on the detection loss
alone.
"""

from __future__ import annotations

import math

SCHEDULES = ("constant", "cosine")


def kd_scale(epochs_done: float, epochs: int, warmup: float = 0.0, schedule: str = "constant", off_last: int = 0,
             final: float = 0.0) -> float:
    """KD weight multiplier in [0, 1] after `epochs_done` (fractional) of `epochs` epochs."""
    kd_epochs = max(epochs - int(off_last), 0)
    if epochs_done >= kd_epochs:
        return 0.0
    ramp = 1.0 if warmup <= 0 else min(1.0, max(epochs_done, 0.0) / (warmup * epochs))
    if schedule == "cosine":
        ramp *= final + (1 - final) * 0.5 * (1 + math.cos(math.pi * epochs_done / kd_epochs))
    return ramp
