"""yolo-kd: knowledge distillation for Ultralytics YOLO detectors (Yao et al., CMC 2025, and peers).

Importing the package is light (Ultralytics is imported on first use of KDTrainer/distill), so `yolo_kd.offline`
can configure Ultralytics' environment first.
"""

from __future__ import annotations

from .compat import check_ultralytics

__version__ = "0.1.0"
ULTRALYTICS_VERSION = check_ultralytics()


def distill(teacher: str, student: str, data: str, **kwargs):
    """Distil `teacher` into `student` on `data`; return the final validation metrics dict of the best checkpoint.

    Example:
        >>> import yolo_kd
        >>> metrics = yolo_kd.distill(teacher="teacher.pt", student="yolov8n.yaml", data="data.yaml", epochs=10)
    """
    from .trainer import KDTrainer

    trainer = KDTrainer(overrides=dict(teacher=teacher, model=student, data=data, **kwargs))
    trainer.train()
    return trainer.metrics


def tune(**kwargs):
    """Search KD settings with Ultralytics' tuner (`use_ray=True`: Ray Tune); return the tune folder, which holds
    best_kd.yaml (use it as `kd=`), summary.md and the plots.

    Example:
        >>> import yolo_kd
        >>> yolo_kd.tune(teacher="t.pt", student="yolov8n.yaml", data="d.yaml", epochs=30, iterations=20)
    """
    from .tuning import tune as run

    return run(**kwargs)


def __getattr__(name: str):
    """Lazy public API: KDTrainer, KDConfig, KDConfigError, TeacherError."""
    if name == "KDTrainer":
        from .trainer import KDTrainer

        return KDTrainer
    if name in {"KDConfig", "KDConfigError"}:
        from . import config

        return getattr(config, name)
    if name == "TeacherError":
        from .teacher import TeacherError

        return TeacherError
    raise AttributeError(f"module 'yolo_kd' has no attribute '{name}'")


__all__ = ("KDConfig", "KDConfigError", "KDTrainer", "TeacherError", "__version__", "distill", "tune")
