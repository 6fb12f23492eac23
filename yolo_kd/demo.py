"""`yolo-kd demo`: generate data, train (or reuse) a teacher, train a baseline and a distilled student with the same
settings and seed, print a comparison table and export the distilled student to ONNX. Offline, CPU-sized."""

from __future__ import annotations

from pathlib import Path

from .runs import MAP, MAP50, count_params, epoch_time, read_results, train_student, train_teacher

DEMO = dict(
    root="datasets/shapes-demo",  # generated data
    train=300,
    val=80,
    imgsz=96,  # demo sizes: the whole demo should stay within 10 min on 2 CPU cores
    teacher_model="yolov8s.yaml",
    teacher_epochs=25,
    student="yolov8n.yaml",
    epochs=25,
    batch=16,
    seed=0,
    device="cpu",
    kd="paper",  # KD preset for the distilled student
    project="runs/demo",
)


def run_demo(**overrides) -> dict:
    """Run the demo; keys of DEMO can be overridden. Returns {'baseline': {...}, 'distilled': {...}}."""
    from .datasets.shapes import ensure
    from .export import export

    unknown = sorted(set(overrides) - set(DEMO))
    if unknown:
        from .config import KDConfigError, suggest

        raise KDConfigError(f"'{unknown[0]}' is not a demo key.{suggest(unknown[0], DEMO)} Valid: {', '.join(DEMO)}")
    cfg = {**DEMO, **overrides}
    data = str(ensure(root=cfg["root"], train=cfg["train"], val=cfg["val"], imgsz=cfg["imgsz"], seed=cfg["seed"],
                      max_objects=4, clutter=6, min_size=0.12))
    project = Path(cfg["project"]).resolve()
    common = dict(data=data, imgsz=cfg["imgsz"], batch=cfg["batch"], seed=cfg["seed"], device=cfg["device"], plots=False)
    teacher = train_teacher(cfg["teacher_model"], run_dir=project / "teacher", epochs=cfg["teacher_epochs"], **common)
    rows = {}
    for label, method in (("baseline", "none"), ("distilled", cfg["kd"])):
        run_dir = project / label
        t = train_student(method, run_dir, str(teacher), model=cfg["student"], epochs=cfg["epochs"], **common)
        rows[label] = {
            "mAP50": t.metrics.get(MAP50, float("nan")),
            "mAP50-95": t.metrics.get(MAP, float("nan")),
            "params": count_params(t.best),
            "s/epoch": epoch_time(run_dir),
            "weights": str(t.best),
        }
    best_epoch = max(read_results(project / "teacher"), key=lambda r: r[MAP], default={MAP50: float("nan"), MAP: float("nan")})
    t_rows = {"teacher": {"mAP50": best_epoch[MAP50], "mAP50-95": best_epoch[MAP], "params": count_params(teacher),
                          "weights": str(teacher)}}
    onnx_file, diff = export(rows["distilled"]["weights"], format="onnx", imgsz=cfg["imgsz"])
    print_table(rows, t_rows, onnx_file, diff)
    return rows


def print_table(rows: dict, teacher: dict, onnx_file: str, diff: float | None) -> None:
    """Print baseline vs distilled (mAP50, mAP50-95, params, epoch time)."""
    print("\n" + "=" * 78)
    print(f"{'model':<12}{'mAP50':>10}{'mAP50-95':>11}{'params':>12}{'s/epoch':>10}  weights")
    for name, r in rows.items():
        print(f"{name:<12}{r['mAP50']:>10.3f}{r['mAP50-95']:>11.3f}{r['params']:>12,}{r['s/epoch']:>10.1f}  {r['weights']}")
    t = teacher["teacher"]
    print(f"{'teacher':<12}{t['mAP50']:>10.3f}{t['mAP50-95']:>11.3f}{t['params']:>12,}{'':>10}  {t['weights']}")
    gain = rows["distilled"]["mAP50-95"] - rows["baseline"]["mAP50-95"]
    print(f"distillation gain: {gain * 100:+.1f} mAP50-95 points (one seed, demo-sized run: a smoke result)")
    print(f"ONNX: {onnx_file} (max abs diff vs PyTorch {diff:.3g})")
    print("=" * 78)
