"""Export a (distilled) student with Ultralytics' exporter and check ONNX Runtime against PyTorch on one image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .config import KDConfigError


def flatten_outputs(out) -> list[np.ndarray]:
    """Every tensor of a (possibly nested tuple/list/dict) model output, in order, as numpy arrays."""
    if isinstance(out, torch.Tensor):
        return [out.detach().cpu().numpy()]
    if isinstance(out, dict):
        out = list(out.values())
    if isinstance(out, (list, tuple)):
        return [a for o in out for a in flatten_outputs(o)]
    return []


def onnx_max_abs_diff(weights: str | Path, onnx_file: str | Path, imgsz: int) -> float:
    """Max |ONNX Runtime - PyTorch| over every ONNX output (detection boxes+scores, and e.g. segmentation prototypes)
    for one deterministic image. Each ONNX output is compared with the PyTorch output of the same shape."""
    import onnxruntime as ort

    from ultralytics.nn.tasks import load_checkpoint

    model, _ = load_checkpoint(weights)
    model = model.float().fuse(verbose=False).eval()
    sess = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    shape = [d if isinstance(d, int) else 1 for d in sess.get_inputs()[0].shape]
    if not all(isinstance(d, int) for d in sess.get_inputs()[0].shape):
        shape[-2:] = [imgsz, imgsz]
    x = torch.from_numpy(np.random.default_rng(0).random(shape, dtype=np.float32))
    with torch.no_grad():
        refs = flatten_outputs(model(x))
    outs = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})
    diffs, used = [], set()
    for out in outs:
        match = next((i for i, r in enumerate(refs) if i not in used and r.shape == out.shape), None)
        if match is None:
            raise ValueError(f"ONNX output of shape {out.shape} has no PyTorch counterpart {[r.shape for r in refs]}")
        used.add(match)
        diffs.append(float(np.abs(out - refs[match]).max()))
    return max(diffs)


def export(model: str | Path, format: str = "onnx", imgsz: int = 640, check: bool = True, **kwargs) -> tuple[str, float | None]:
    """Export `model` (a .pt) with Ultralytics; for ONNX also return the max abs difference to PyTorch."""
    from ultralytics import YOLO
    from ultralytics.engine.exporter import export_formats

    if not Path(str(model)).exists():
        raise FileNotFoundError(f"model '{model}' not found: pass model=path/to/weights.pt")
    formats = tuple(export_formats()["Argument"][1:])
    if format not in formats:
        raise KDConfigError(f"format={format} is not an export format; valid: {', '.join(formats)}")
    try:
        yolo = YOLO(str(model))
    except Exception as e:
        from .errors import one_line

        raise KDConfigError(f"model '{model}' could not be loaded ({one_line(e, 120)})") from None
    f = yolo.export(format=format, imgsz=imgsz, **kwargs)
    diff = None
    if check and format == "onnx":
        diff = onnx_max_abs_diff(model, f, imgsz)
        print(f"ONNX Runtime vs PyTorch on one {imgsz}x{imgsz} image, every output: max abs diff {diff:.3g}")
    return f, diff
