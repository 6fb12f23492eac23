"""Export a (distilled) student with Ultralytics' exporter and check ONNX Runtime against PyTorch on one image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


def onnx_max_abs_diff(weights: str | Path, onnx_file: str | Path, imgsz: int) -> float:
    """Max |ONNX Runtime - PyTorch| over the raw (B, 4 + nc, A) output for one deterministic image."""
    import onnxruntime as ort

    from ultralytics.nn.tasks import load_checkpoint

    model, _ = load_checkpoint(weights)
    model = model.float().fuse(verbose=False).eval()
    x = torch.from_numpy(np.random.default_rng(0).random((1, 3, imgsz, imgsz), dtype=np.float32))
    with torch.no_grad():
        ref = model(x)
    ref = (ref[0] if isinstance(ref, (tuple, list)) else ref).numpy()
    sess = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    out = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    return float(np.abs(out - ref).max())


def export(model: str | Path, format: str = "onnx", imgsz: int = 640, check: bool = True, **kwargs) -> tuple[str, float | None]:
    """Export `model` (a .pt) with Ultralytics; for ONNX also return the max abs difference to PyTorch."""
    from ultralytics import YOLO

    f = YOLO(str(model)).export(format=format, imgsz=imgsz, **kwargs)
    diff = None
    if check and format == "onnx":
        diff = onnx_max_abs_diff(model, f, imgsz)
        print(f"ONNX Runtime vs PyTorch on one {imgsz}x{imgsz} image: max abs diff {diff:.3g}")
    return f, diff
