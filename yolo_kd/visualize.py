"""`yolo-kd attention`: for a few validation images, save the teacher's spatial attention, the ground-truth foreground
mask and the student's spatial attention side by side (one PNG per image), at one feature level."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from .losses.spatial_attention import foreground_maps, spatial_attention
from .teacher import head_outputs, load_teacher


def _load_image(file: Path, imgsz: int) -> tuple[np.ndarray, torch.Tensor]:
    """Image resized to imgsz x imgsz (RGB uint8) and as a (1, 3, imgsz, imgsz) float tensor in [0, 1]."""
    img = cv2.cvtColor(cv2.resize(cv2.imread(str(file)), (imgsz, imgsz)), cv2.COLOR_BGR2RGB)
    return img, torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255


def _labels(file: Path) -> torch.Tensor:
    """(N, 5) cls, cx, cy, w, h from a YOLO label file (normalised, so valid after a square resize)."""
    from ultralytics.data.utils import img2label_paths

    lab = Path(img2label_paths([str(file)])[0])
    return torch.tensor(np.loadtxt(lab, ndmin=2), dtype=torch.float32) if lab.exists() and lab.read_text().strip() else torch.zeros(0, 5)


ATTENTION_KEYS = ("model", "teacher", "data", "n", "imgsz", "level", "temp", "save_dir")


def attention_cli(**kw) -> Path:
    """`yolo-kd attention model=... teacher=... data=...`: check the keys, write the maps, print where they went."""
    from .config import KDConfigError, suggest

    for k in kw:
        if k not in ATTENTION_KEYS:
            raise KDConfigError(f"'{k}' is not a 'yolo-kd attention' argument.{suggest(k, ATTENTION_KEYS)} Valid: "
                                f"{', '.join(ATTENTION_KEYS)}")
    missing = [k for k in ("model", "teacher", "data") if not kw.get(k)]
    if missing:
        raise KDConfigError(f"'yolo-kd attention' needs {', '.join(f'{k}=' for k in missing)} (e.g. model=best.pt "
                            f"teacher=teacher.pt data=data.yaml)")
    out = save_attention_maps(**kw)
    print(f"attention maps saved to {out}")
    return out


def validation_images(data: dict, n: int) -> list[Path]:
    """The first `n` image files (sorted) of a checked data dict's validation folder."""
    val = Path(data["val"])
    return sorted(p for p in (val.rglob("*") if val.is_dir() else []) if p.suffix.lower() in {".jpg", ".png", ".jpeg"})[:n]


def _check_int(name: str, value, low: int, high: int | None = None) -> int:
    from .config import KDConfigError

    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        rng = f"{low}..{high}" if high is not None else f">= {low}"
        raise KDConfigError(f"'{name}={value}' must be an integer in {rng}")
    return value


def save_attention_maps(
    model: str, teacher: str, data: str, n: int = 4, imgsz: int = 640, level: int = 0, temp: float = 0.5, save_dir: str | None = None
) -> Path:
    """Write attention_<i>.png for the first `n` validation images of `data`; return the output directory (by
    default a new runs/detect/attention<N>, Ultralytics' run-folder convention). Everything is checked before the
    folder is made."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ultralytics.data.utils import check_det_dataset
    from ultralytics.utils import SETTINGS
    from ultralytics.utils.checks import check_imgsz
    from ultralytics.utils.files import increment_path

    from .config import KDConfigError
    from .preflight import check_student, check_writable
    from .teacher import detect_head

    n, level = _check_int("n", n, 1), _check_int("level", level, 0)
    if isinstance(temp, bool) or not isinstance(temp, (int, float)) or not temp > 0:
        raise KDConfigError(f"'temp={temp}' must be a number > 0")
    student = check_student(model)
    if not isinstance(student, torch.nn.Module):
        raise KDConfigError(f"model={model}: pass the trained student's weights (.pt), not a model YAML")
    student = student.float().eval()
    t_model = load_teacher(teacher).eval()
    levels = len(detect_head(student).stride)
    if level >= levels:
        raise KDConfigError(f"'level={level}' is out of range: the student has {levels} detection levels (0..{levels - 1})")
    stride = int(max(detect_head(student).stride.max(), detect_head(t_model).stride.max()))
    imgsz = check_imgsz(_check_int("imgsz", imgsz, 1), stride=stride, max_dim=1)  # as training rounds it
    files = validation_images(check_det_dataset(data), n)
    if not files:
        raise KDConfigError(f"no validation images found in {val}")
    out = Path(save_dir) if save_dir else Path(SETTINGS["runs_dir"]) / "detect" / "attention"
    check_writable(out, f"save_dir={out}")
    out = increment_path(out, exist_ok=bool(save_dir), mkdir=True)
    for i, f in enumerate(files):
        img, x = _load_image(f, imgsz)
        with torch.no_grad():
            t_feat = head_outputs(t_model(x)).feats[level]
            s_feat = head_outputs(student(x)).feats[level]
        lab = _labels(f)
        fg = foreground_maps({"bboxes": lab[:, 1:], "batch_idx": torch.zeros(len(lab))}, [tuple(t_feat.shape[-2:])], 1)[0]
        panels = [("image", img), ("teacher attention", spatial_attention(t_feat, temp)[0, 0]),
                  ("GT foreground", fg[0, 0]), ("student attention", spatial_attention(s_feat, temp)[0, 0])]
        fig, axes = plt.subplots(1, 4, figsize=(12, 3.2))
        for ax, (title, im) in zip(axes, panels):
            ax.imshow(im if isinstance(im, np.ndarray) else im.numpy(), cmap=None if title == "image" else "viridis")
            ax.set_title(title)
            ax.axis("off")
        fig.tight_layout()
        fig.savefig(out / f"attention_{i}.png", dpi=100)
        plt.close(fig)
    return out
