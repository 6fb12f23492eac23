"""`yolo-kd demo`: generate data, train (or reuse) a teacher, train a baseline and a distilled student with the same
settings and seed, export the distilled student to ONNX, save a side-by-side picture and attention maps, and print
a closing table. Offline and CPU-sized (one seed: a demonstration, not a benchmark)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from .runs import MAP, MAP50, count_params, epoch_time, read_results, train_student, train_teacher

DEMO = dict(
    root="datasets/shapes-demo",  # generated data: 3 large, distinct shape classes on a plain background
    train=400,  # 400 images: the 25-epoch teacher reaches 0.419 (0.374 with 300; docs/demo/teacher_sweep.ndjson)
    val=100,
    imgsz=64,
    classes=3,
    teacher_model="yolov8s.yaml",
    teacher_epochs=25,
    teacher_batch=8,  # one optimizer step per 8 images: yolov8s learns the task within 25 epochs (0.29 at 16)
    student="yolov8n.yaml",
    epochs=15,  # students train shorter than the teacher, so the baseline stays below it and KD has room
    batch=16,
    seed=0,  # the students' training seed (data and teacher always use seed 0: every seed distils from one teacher)
    device="cpu",
    kd="paper",  # KD preset for the distilled student
    project="runs/demo",
    show=4,  # validation images in the side-by-side picture
)
# training settings measured on the demo data (seed 0) so a 25-epoch teacher learns the task on 2 CPU cores
# (nbs=batch: one optimizer step per batch, not Ultralytics' accumulation to 64 images; validation at the end only)
# The students keep the 1-epoch warm-up too: with Ultralytics' 3 epochs the seed-0 baseline reached 0.425, past the
# 0.419 teacher, and distilling it cost 2.5 points (2026-11-27): a demo needs a teacher clearly ahead of the baseline.
TRAIN = dict(optimizer="AdamW", lr0=0.002, warmup_epochs=1, mosaic=0.0, scale=0.2, val=False, plots=False)
GENERATOR = dict(max_objects=2, clutter=0, min_size=0.35, max_size=0.7)


class Stages:
    """Elapsed seconds per stage, printed as each one ends."""

    def __init__(self):
        self.times: dict[str, float] = {}
        self._t0 = time.perf_counter()

    def done(self, name: str) -> None:
        now = time.perf_counter()
        self.times[name] = now - self._t0
        self._t0 = now
        print(f"demo: {name} done in {self.times[name]:.0f} s", flush=True)


def run_demo(**overrides) -> dict:
    """Run the demo; keys of DEMO can be overridden. Returns the closing table's rows {name: {...}}."""
    from .export import export
    from .visualize import save_attention_maps

    cfg = check_demo_keys(overrides)
    stages = Stages()
    data = demo_data(cfg)
    stages.done("data")
    project = Path(cfg["project"]).resolve()
    common = dict(data=data, imgsz=cfg["imgsz"], device=cfg["device"], **TRAIN)
    teacher = train_teacher(cfg["teacher_model"], run_dir=project / "teacher", epochs=cfg["teacher_epochs"],
                            batch=cfg["teacher_batch"], nbs=cfg["teacher_batch"], seed=0, **common)
    common.update(batch=cfg["batch"], nbs=cfg["batch"], seed=cfg["seed"])
    stages.done("teacher (reused when already trained)")
    rows = {"teacher": _row(project / "teacher", teacher)}
    for label, method in (("baseline", "none"), ("distilled", cfg["kd"])):
        run_dir = project / label
        shutil.rmtree(run_dir, ignore_errors=True)  # students are retrained on every run
        t = train_student(method, run_dir, str(teacher), model=cfg["student"], epochs=cfg["epochs"], **common)
        rows[label] = _row(run_dir, t.best)
        stages.done(label)
    onnx_file, diff = export(rows["distilled"]["weights"], format="onnx", imgsz=cfg["imgsz"])
    rows["distilled"]["onnx"] = diff
    stages.done("ONNX export and parity check")
    picture = save_comparison({k: r["weights"] for k, r in rows.items()}, data, cfg["imgsz"], project / "compare.png",
                              n=cfg["show"])
    attention = save_attention_maps(rows["distilled"]["weights"], str(teacher), data, n=1, imgsz=cfg["imgsz"],
                                    save_dir=str(project / "attention"))
    stages.done("pictures")
    table = closing_table(rows, onnx_file, stages.times)
    (project / "demo_table.txt").write_text(table + "\n")
    print(table)
    print(f"Boxes side by side (teacher | baseline | distilled): {picture}")
    print(f"Attention maps (image, teacher, ground truth, distilled student): {attention}")
    print("Next, on your own data: yolo-kd check teacher=<your teacher.pt> student=yolov8n.yaml data=<your data.yaml>"
          "  then  yolo-kd train teacher=... student=... data=... epochs=100")
    return rows


def demo_data(cfg: dict) -> str:
    """The demo's generated dataset for a DEMO-like `cfg` (generated once, with seed 0); returns its data.yaml."""
    from .datasets.shapes import ensure

    return str(ensure(root=cfg["root"], train=cfg["train"], val=cfg["val"], imgsz=cfg["imgsz"], seed=0,
                      classes=cfg["classes"], **GENERATOR))


def check_demo_keys(overrides: dict) -> dict:
    """DEMO with `overrides`; KDConfigError naming an unknown key."""
    unknown = sorted(set(overrides) - set(DEMO))
    if unknown:
        from .config import KDConfigError, suggest

        raise KDConfigError(f"'{unknown[0]}' is not a demo key.{suggest(unknown[0], DEMO)} Valid: {', '.join(DEMO)}")
    return {**DEMO, **overrides}


def _row(run_dir: Path, weights: Path) -> dict:
    """Final validation metrics of a run (the demo validates after the last epoch), parameters, seconds per epoch."""
    rows = read_results(run_dir)
    last = rows[-1] if rows else {MAP50: float("nan"), MAP: float("nan")}
    return {"mAP50": last[MAP50], "mAP50-95": last[MAP], "params": count_params(weights), "s/epoch": epoch_time(run_dir),
            "weights": str(weights)}


def closing_table(rows: dict, onnx_file: str, times: dict) -> str:
    """Teacher, baseline and distilled: mAP50, mAP50-95, parameters, s/epoch and the ONNX parity; the gain; the
    stage times."""
    lines = ["=" * 86, f"{'model':<11}{'mAP50':>8}{'mAP50-95':>10}{'params':>12}{'s/epoch':>9}{'ONNX max |diff|':>17}  weights"]
    for name, r in rows.items():
        onnx = f"{r['onnx']:.2g}" if r.get("onnx") is not None else "-"
        lines.append(f"{name:<11}{r['mAP50']:>8.3f}{r['mAP50-95']:>10.3f}{r['params']:>12,}{r['s/epoch']:>9.1f}"
                     f"{onnx:>17}  {r['weights']}")
    gain = rows["distilled"]["mAP50-95"] - rows["baseline"]["mAP50-95"]
    lines.append(f"distillation gain: {gain * 100:+.1f} mAP50-95 points over the baseline "
                 f"(one seed; the README reports 3 seeds)")
    lines.append(f"ONNX: {onnx_file}")
    lines.append("stage times: " + ", ".join(f"{k.split(' (')[0]} {v:.0f} s" for k, v in times.items())
                 + f"; total {sum(times.values()) / 60:.1f} min")
    lines.append("=" * 86)
    return "\n".join(lines)


def save_comparison(weights: dict, data: str, imgsz: int, out: Path, n: int = 4, conf: float = 0.25) -> Path:
    """One picture: a row per validation image, a column per model (its predicted boxes), titled by model name."""
    import cv2
    import numpy as np
    from ultralytics import YOLO
    from ultralytics.data.utils import check_det_dataset

    from .visualize import validation_images

    info = check_det_dataset(data)
    files = validation_images(info, n)
    scale = max(1, 256 // imgsz)  # draw on an upscaled copy so labels stay readable
    columns = []
    for name, w in weights.items():
        results = YOLO(w).predict([str(f) for f in files], imgsz=imgsz, conf=conf, verbose=False)
        tiles = [_draw(r, scale, info["names"]) for r in results]
        header = np.full((28, tiles[0].shape[1], 3), 255, np.uint8)
        cv2.putText(header, name, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
        columns.append(np.vstack([header, *tiles]))
    gap = np.full((columns[0].shape[0], 6, 3), 255, np.uint8)
    picture = np.hstack([c for col in columns for c in (col, gap)][:-1])
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), picture)
    return out


def _draw(result, scale: int, names: dict):
    """The result's image upscaled `scale` times with its boxes and 'class conf' labels."""
    import cv2

    img = cv2.resize(result.orig_img, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    for (x1, y1, x2, y2), c, p in zip(result.boxes.xyxy.tolist(), result.boxes.cls.tolist(), result.boxes.conf.tolist()):
        p1, p2 = (int(x1 * scale), int(y1 * scale)), (int(x2 * scale), int(y2 * scale))
        cv2.rectangle(img, p1, p2, (0, 0, 255), 2)
        cv2.putText(img, f"{names[int(c)]} {p:.2f}", (p1[0] + 2, max(p1[1] - 4, 12)), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    (0, 0, 255), 1, cv2.LINE_AA)
    return img
