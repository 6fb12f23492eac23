"""Where a YOLO detector's neck starts, and the backbone outputs it reads (for teacher-neck distillation).

Ultralytics builds a detector as one `nn.Sequential` whose layers carry their index `i` and the indices `f` they read
(-1: the previous layer). The neck starts at the first `nn.Upsample`; the backbone outputs it reads are the layers
before it that some later layer takes as input (P3, P4, P5: layers 4, 6, 9 in YOLOv8; 4, 6, 10 in YOLO11 and YOLO26).
"""

from __future__ import annotations

import torch
from torch import nn


def _sources(m: nn.Module) -> list[int]:
    """Absolute indices of the layers that layer `m` reads."""
    f = [m.f] if isinstance(m.f, int) else list(m.f)
    return [m.i + j if j < 0 else j for j in f]


def neck_inputs(model: nn.Module) -> tuple[int, tuple[int, ...]]:
    """(index of the first neck layer, sorted indices of the backbone layers that the neck reads) of a detector
    built by Ultralytics. ValueError when the model has no `nn.Upsample` (no top-down neck to split at)."""
    layers = model.model
    start = next((m.i for m in layers if isinstance(m, nn.Upsample)), None)
    if start is None:
        raise ValueError(f"{type(model).__name__} has no Upsample layer: its neck cannot be located")
    return start, tuple(sorted({j for m in layers[start:] for j in _sources(m) if j < start}))


def find_neck(model: nn.Module) -> tuple[int, tuple[int, ...]] | None:
    """`neck_inputs(model)`, or None for a model without a top-down neck (no `Upsample`, or not built by
    Ultralytics' layer graph): the teacher-neck term is then not built for the pair."""
    try:
        return neck_inputs(model)
    except (ValueError, AttributeError):
        return None


def run_layers(layers, outputs: dict[int, torch.Tensor]):
    """Run `layers` (consecutive layers of a detector, each reading `f`) on the given outputs of earlier layers
    ({index: tensor}); return the last layer's output (the head's, when `layers` ends with it)."""
    y, x = dict(outputs), None
    for m in layers:
        src = _sources(m)
        x = m(y[src[0]] if isinstance(m.f, int) else [y[j] for j in src])
        y[m.i] = x
    return x


class BackboneTap:
    """Records the outputs of a model's layers `indices` in each forward pass while attached: `take()` returns the
    last pass's outputs in index order ([(B, C_j, H_j, W_j)], still in the autograd graph) and forgets them. The
    hooks are local closures, so whoever attaches them must detach them before the model can be copied or pickled
    (the trainer attaches them for the training batches of an epoch only; no Ultralytics checkpoint or EMA copy is
    made from the training model in that span)."""

    def __init__(self, model: nn.Module, indices: tuple[int, ...]):
        self.layers = [model.model[j] for j in indices]
        self.outputs, self.handles = {}, []

    def attach(self) -> None:
        """Hook the layers (idempotent)."""
        if not self.handles:
            self.handles = [m.register_forward_hook(self._record(k)) for k, m in enumerate(self.layers)]

    def _record(self, k: int):
        def hook(module, args, output):
            self.outputs[k] = output

        return hook

    def detach(self) -> None:
        """Remove the hooks and forget what was recorded."""
        for h in self.handles:
            h.remove()
        self.handles, self.outputs = [], {}

    def take(self) -> list[torch.Tensor]:
        """The last pass's outputs (empty list when no hooked pass reached every layer); they are forgotten here."""
        out, self.outputs = self.outputs, {}
        return [out[k] for k in range(len(self.layers))] if len(out) == len(self.layers) else []

