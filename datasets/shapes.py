"""Deterministic synthetic detection dataset ("shapes") in YOLO format.

Each image is a cluttered, textured background with 1..`max_objects` objects of `classes` shape classes, drawn
in random colours, textures and sizes; later objects may occlude earlier ones. An object keeps its label only while at
least `min_visible` of its pixels stay visible, and its box is the box of the whole shape (COCO convention).
Distractor blobs and line clutter make the background non-trivial, so a small model is clearly worse than a large
one.

Layout written under `root`::

    root/images/{train,val}/000000.jpg
    root/labels/{train,val}/000000.txt   # "cls cx cy w h", normalised
    root/data.yaml                        # path, train, val, names

Usage::

    python datasets/shapes.py root=datasets/shapes train=400 val=100 imgsz=160 seed=0
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import yaml

CLASSES = ("circle", "square", "triangle", "cross", "ring", "star", "hexagon", "crescent")


@dataclass
class ShapesConfig:
    """Generator settings; every field can be set as `key=value` on the command line."""

    root: str = "datasets/shapes"
    train: int = 400
    val: int = 100
    imgsz: int = 160
    seed: int = 0
    classes: int = 6  # the first `classes` names of CLASSES are drawn
    max_objects: int = 6
    min_size: float = 0.08  # object size as a fraction of the image side
    max_size: float = 0.40
    min_visible: float = 0.5
    clutter: int = 12  # distractor strokes and blobs per image


def _texture(rng: np.random.Generator, h: int, w: int, color: np.ndarray) -> np.ndarray:
    """Return an (h, w, 3) uint8 patch: solid, striped or checkered in `color` and a darker/lighter shade."""
    kind = rng.integers(3)
    shade = np.clip(color.astype(int) + rng.integers(-90, 90, 3), 0, 255)
    patch = np.empty((h, w, 3), np.uint8)
    patch[:] = color
    if kind == 0:
        return patch
    period = int(rng.integers(3, 8))
    yy, xx = np.mgrid[:h, :w]
    if kind == 1:
        sel = ((xx + yy) // period) % 2 == 0
    else:
        sel = ((xx // period) + (yy // period)) % 2 == 0
    patch[sel] = shade
    return patch


def _shape_mask(cls: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Return a (size, size) uint8 mask (0/1) of shape class `cls`, slightly randomised."""
    m = np.zeros((size, size), np.uint8)
    c, r = size // 2, max(size // 2 - 1, 1)
    name = CLASSES[cls]
    if name == "circle":
        cv2.circle(m, (c, c), r, 1, -1)
    elif name == "square":
        k = max(int(r * 0.85), 1)
        cv2.rectangle(m, (c - k, c - k), (c + k, c + k), 1, -1)
    elif name == "triangle":
        pts = np.array([[c, c - r], [c - r, c + int(r * 0.8)], [c + r, c + int(r * 0.8)]], np.int32)
        cv2.fillPoly(m, [pts], 1)
    elif name == "cross":
        t = max(r // 3, 1)
        cv2.rectangle(m, (c - r, c - t), (c + r, c + t), 1, -1)
        cv2.rectangle(m, (c - t, c - r), (c + t, c + r), 1, -1)
    elif name == "ring":
        cv2.circle(m, (c, c), r, 1, -1)
        cv2.circle(m, (c, c), max(int(r * 0.55), 1), 0, -1)
    elif name == "hexagon":
        ang = np.linspace(0, 2 * np.pi, 7)[:-1]
        pts = np.stack([c + r * np.cos(ang), c + r * np.sin(ang)], 1).astype(np.int32)
        cv2.fillPoly(m, [pts], 1)
    elif name == "crescent":
        cv2.circle(m, (c, c), r, 1, -1)
        cv2.circle(m, (c + max(r // 2, 1), c), max(int(r * 0.8), 1), 0, -1)
    else:  # star
        ang = np.linspace(0, 2 * np.pi, 11)[:-1] - np.pi / 2
        rad = np.where(np.arange(10) % 2 == 0, r, r * 0.45)
        pts = np.stack([c + rad * np.cos(ang), c + rad * np.sin(ang)], 1).astype(np.int32)
        cv2.fillPoly(m, [pts], 1)
    angle = float(rng.uniform(-25, 25)) if name not in {"circle", "ring"} else 0.0
    if angle:
        rot = cv2.getRotationMatrix2D((c, c), angle, 1.0)
        m = cv2.warpAffine(m, rot, (size, size), flags=cv2.INTER_NEAREST)
    return m


def _background(rng: np.random.Generator, s: int, clutter: int) -> np.ndarray:
    """Return an (s, s, 3) uint8 background: colour gradient + noise + distractor strokes and blobs."""
    c0, c1 = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    t = np.linspace(0, 1, s)[:, None, None]
    img = (c0 * (1 - t) + c1 * t).repeat(s, 1)
    img = img + rng.normal(0, 12, (s, s, 3))
    img = np.clip(img, 0, 255).astype(np.uint8)
    for _ in range(clutter):
        color = tuple(int(v) for v in rng.integers(0, 256, 3))
        p1, p2 = rng.integers(0, s, 2), rng.integers(0, s, 2)
        if rng.random() < 0.6:
            cv2.line(img, tuple(int(v) for v in p1), tuple(int(v) for v in p2), color, int(rng.integers(1, 3)))
        else:  # irregular blob, not one of the classes
            axes = tuple(int(v) for v in rng.integers(2, max(s // 12, 3), 2))
            cv2.ellipse(img, tuple(int(v) for v in p1), axes, float(rng.uniform(0, 180)), 0, 300, color, -1)
    return img


def render_image(rng: np.random.Generator, cfg: ShapesConfig) -> tuple[np.ndarray, list[tuple[int, float, ...]]]:
    """Render one image; return it (BGR uint8) and its labels [(cls, cx, cy, w, h), ...] normalised to [0, 1]."""
    s = cfg.imgsz
    img = _background(rng, s, cfg.clutter)
    owner = np.full((s, s), -1, np.int32)  # which object owns each pixel (for visibility)
    objects = []
    for k in range(int(rng.integers(1, cfg.max_objects + 1))):
        cls = int(rng.integers(cfg.classes))
        size = int(rng.uniform(cfg.min_size, cfg.max_size) * s)
        size = max(size, 6)
        x0, y0 = (int(v) for v in rng.integers(0, s - size + 1, 2))
        mask = _shape_mask(cls, size, rng).astype(bool)
        color = rng.integers(0, 256, 3).astype(np.uint8)
        region = img[y0 : y0 + size, x0 : x0 + size]
        region[mask] = _texture(rng, size, size, color)[mask]
        owner[y0 : y0 + size, x0 : x0 + size][mask] = k
        ys, xs = np.nonzero(mask)
        box = (x0 + xs.min(), y0 + ys.min(), x0 + xs.max() + 1, y0 + ys.max() + 1)
        objects.append((cls, box, int(mask.sum())))
    labels = []
    for k, (cls, (x1, y1, x2, y2), area) in enumerate(objects):
        if (owner == k).sum() >= cfg.min_visible * area:
            labels.append((cls, (x1 + x2) / 2 / s, (y1 + y2) / 2 / s, (x2 - x1) / s, (y2 - y1) / s))
    return img, labels


def generate(cfg: ShapesConfig | None = None, **overrides) -> Path:
    """Write the dataset described by `cfg` (plus `overrides`) and return the path of its data.yaml."""
    cfg = cfg or ShapesConfig()
    for k, v in overrides.items():
        setattr(cfg, k, type(getattr(cfg, k))(v))
    root = Path(cfg.root).resolve()
    for split, n, offset in (("train", cfg.train, 0), ("val", cfg.val, 10_000_000)):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            rng = np.random.default_rng([cfg.seed, offset + i])  # one stream per image: order-independent
            img, labels = render_image(rng, cfg)
            cv2.imwrite(str(root / "images" / split / f"{i:06d}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 95])
            lines = [f"{c} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}" for c, cx, cy, w, h in labels]
            (root / "labels" / split / f"{i:06d}.txt").write_text("\n".join(lines) + ("\n" if lines else ""))
    data = {"path": str(root), "train": "images/train", "val": "images/val", "names": dict(enumerate(CLASSES[: cfg.classes]))}
    (root / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    (root / "generator.yaml").write_text(yaml.safe_dump(vars(cfg), sort_keys=False))
    return root / "data.yaml"


def ensure(cfg: ShapesConfig | None = None, **overrides) -> Path:
    """Return data.yaml of the dataset, generating it first unless an identical one already exists."""
    cfg = cfg or ShapesConfig()
    for k, v in overrides.items():
        setattr(cfg, k, type(getattr(cfg, k))(v))
    root = Path(cfg.root).resolve()
    stamp = root / "generator.yaml"
    if stamp.exists() and (root / "data.yaml").exists():
        if yaml.safe_load(stamp.read_text()) == vars(cfg):
            return root / "data.yaml"
    return generate(cfg)


def relabel(data: str | Path, root: str | Path, keep: list[str]) -> Path:
    """A copy of a dataset that labels only the classes `keep`, numbered in that order; other objects stay in the
    images, unlabeled. Images are shared through a symlink. Returns the new data.yaml (rewritten only when needed).

    Used to measure class-mapped teachers: the teacher knows every class, the student's data a subset, reordered."""
    src = yaml.safe_load(Path(data).read_text())
    names = list(src["names"].values()) if isinstance(src["names"], dict) else list(src["names"])
    missing = [k for k in keep if k not in names]
    if missing:
        raise ValueError(f"relabel: {missing} are not classes of {data} ({names})")
    root, src_root = Path(root).resolve(), Path(src["path"])
    out = {"path": str(root), "train": src["train"], "val": src["val"], "names": dict(enumerate(keep)),
           "source": str(data)}
    if (root / "data.yaml").exists() and yaml.safe_load((root / "data.yaml").read_text()) == out:
        return root / "data.yaml"
    root.mkdir(parents=True, exist_ok=True)
    if not (root / "images").exists():
        (root / "images").symlink_to(src_root / "images", target_is_directory=True)
    new_id = {names.index(k): i for i, k in enumerate(keep)}
    for f in (src_root / "labels").rglob("*.txt"):
        rows = [ln.split() for ln in f.read_text().splitlines() if ln.strip()]
        kept = [" ".join([str(new_id[int(r[0])]), *r[1:]]) for r in rows if int(r[0]) in new_id]
        dst = root / f.relative_to(src_root)
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_text("\n".join(kept) + ("\n" if kept else ""))
    for cache in (root / "labels").glob("*.cache"):
        cache.unlink()
    (root / "data.yaml").write_text(yaml.safe_dump(out, sort_keys=False))
    return root / "data.yaml"


if __name__ == "__main__":
    kwargs = dict(a.split("=", 1) for a in sys.argv[1:])
    print(generate(**kwargs))
