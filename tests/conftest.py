"""Shared fixtures: offline Ultralytics, a tiny generated dataset and a tiny trained teacher (session-scoped)."""

from __future__ import annotations

from pathlib import Path

import pytest

from yolo_kd.offline import use_offline_mode

ROOT = Path(__file__).resolve().parents[1]
use_offline_mode(ROOT / ".yolo_config")  # before anything imports ultralytics

IMGSZ = 64


@pytest.fixture(scope="session")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("yolo_kd")


@pytest.fixture(scope="session")
def tiny_data(workdir) -> str:
    """16 train / 8 val images at 64 px."""
    from yolo_kd.datasets.shapes import generate

    return str(generate(root=str(workdir / "data"), train=16, val=8, imgsz=IMGSZ, seed=0))


@pytest.fixture(scope="session")
def tiny_teacher(workdir, tiny_data) -> str:
    """A yolov8s teacher trained for 1 epoch (wider than the yolov8n student, so adapters are exercised)."""
    from yolo_kd.runs import train_teacher

    return str(train_teacher("yolov8s.yaml", workdir / "runs" / "teacher", data=tiny_data, epochs=1, imgsz=IMGSZ,
                             batch=8, device="cpu", plots=False, workers=0))


def setup_with_batch(overrides: dict):
    """A KDTrainer after Ultralytics' `_setup_train` (KD criterion attached) and its first preprocessed batch."""
    from yolo_kd import KDTrainer

    t = KDTrainer(overrides=overrides)
    t._setup_train()
    return t, t.preprocess_batch(next(iter(t.train_loader)))


def tiny_overrides(workdir: Path, tiny_data: str, tiny_teacher: str, name: str, **kw) -> dict:
    base = dict(model="yolov8n.yaml", teacher=tiny_teacher, data=tiny_data, epochs=1, imgsz=IMGSZ, batch=8,
                device="cpu", plots=False, project=str(workdir / "runs"), name=name, exist_ok=True)
    return {**base, **kw}
