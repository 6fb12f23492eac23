"""The bundled dataset generator: deterministic, valid YOLO labels."""

import hashlib
from pathlib import Path

import numpy as np

from yolo_kd.datasets.shapes import CLASSES, generate


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(root.rglob("*")):
        if f.suffix in {".txt", ".jpg"}:
            h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()


def test_generator_is_deterministic(tmp_path):
    a = generate(root=str(tmp_path / "a"), train=6, val=3, imgsz=96, seed=3).parent
    b = generate(root=str(tmp_path / "b"), train=6, val=3, imgsz=96, seed=3).parent
    c = generate(root=str(tmp_path / "c"), train=6, val=3, imgsz=96, seed=4).parent
    assert _digest(a) == _digest(b)
    assert _digest(a) != _digest(c)


def test_labels_lie_inside_images(tmp_path):
    root = generate(root=str(tmp_path / "d"), train=30, val=5, imgsz=80, seed=0).parent
    labels = [np.loadtxt(f, ndmin=2) for f in (root / "labels" / "train").glob("*.txt") if f.read_text().strip()]
    lab = np.concatenate(labels)
    assert len(lab) > 30
    cls, cx, cy, w, h = lab.T
    assert set(cls.astype(int)) <= set(range(len(CLASSES)))
    assert (w > 0).all() and (h > 0).all()
    assert (cx - w / 2 >= -1e-6).all() and (cx + w / 2 <= 1 + 1e-6).all()
    assert (cy - h / 2 >= -1e-6).all() and (cy + h / 2 <= 1 + 1e-6).all()
    assert len(list((root / "images" / "train").glob("*.jpg"))) == 30
