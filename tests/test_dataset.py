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


def test_classes_and_relabel_keep_a_reordered_subset(tmp_path):
    """`classes=8` draws all eight shapes; `relabel` keeps 3 of them, renumbered in the given order, same images."""
    import yaml

    from yolo_kd.datasets.shapes import relabel

    data = generate(root=str(tmp_path / "full"), train=40, val=4, imgsz=64, seed=1, classes=8)
    full = yaml.safe_load(data.read_text())["names"]
    assert list(full.values()) == list(CLASSES) and len(CLASSES) == 8
    sub = relabel(data, tmp_path / "sub", ["star", "circle", "cross"])
    assert yaml.safe_load(sub.read_text())["names"] == {0: "star", 1: "circle", 2: "cross"}
    assert (tmp_path / "sub" / "images" / "train" / "000000.jpg").exists()  # shared images
    old_id = {0: 5, 1: 0, 2: 3}
    for f in (data.parent / "labels" / "train").glob("*.txt"):
        src = [ln.split() for ln in f.read_text().splitlines() if ln.strip()]
        dst = [ln.split() for ln in (tmp_path / "sub" / "labels" / "train" / f.name).read_text().splitlines() if ln]
        expected = [[str(k), *r[1:]] for r in src for k, t in old_id.items() if int(r[0]) == t]
        assert dst == expected
    assert relabel(data, tmp_path / "sub", ["star", "circle", "cross"]) == sub  # unchanged: not rewritten
