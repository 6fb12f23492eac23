"""CPU speed of one KD method against Ultralytics' built-in distillation, for the README's speed table.

    python docs/speed/measure.py LABEL METHOD ['{"fr_generator": "separable"}']

On the CPU bench preset's data (`datasets/shapes-bench`, 600 images at 128 px), batch 32, yolov8s teacher (trained for
one epoch here: speed does not depend on how well it is trained) -> yolov8n student, 3 epochs without validation.
Appends one JSON line to docs/speed/runs.ndjson: seconds per epoch (epochs 2-3 averaged: the first includes start-up)
and `yolo_kd.timing.step_overhead` (KD step, student step and teacher forward on the same batches; medians of 8).
Run the methods to compare one after the other, alternating, on an otherwise idle machine: this machine's speed
drifts by 10 % over tens of minutes, so only neighbouring runs compare."""

import json
import shutil
import sys
from pathlib import Path

from yolo_kd.offline import use_offline_mode

use_offline_mode()
from yolo_kd.datasets.shapes import ensure  # noqa: E402
from yolo_kd.runs import read_results, train_student, train_teacher  # noqa: E402
from yolo_kd.timing import step_overhead  # noqa: E402

EPOCHS = 3
label, method = sys.argv[1], sys.argv[2]
extra = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
out = Path("runs/speed")
data = str(ensure(root="datasets/shapes-bench", train=600, val=150, imgsz=128, seed=1))
common = dict(data=data, imgsz=128, batch=32, seed=0, device="cpu", val=False, plots=False)
teacher = train_teacher("yolov8s.yaml", out / "teacher", epochs=1, **common)
run_dir = out / f"{label}-{method}"
shutil.rmtree(run_dir, ignore_errors=True)
trainer = train_student(method, run_dir, str(teacher), model="yolov8n.yaml", epochs=EPOCHS, **common, **extra)
times = [r["time"] for r in read_results(run_dir)]
per_epoch = [b - a for a, b in zip([0.0] + times, times)]
line = dict(label=label, method=method, extra=extra, epoch_s=per_epoch,
            epoch_s_after_first=sum(per_epoch[1:]) / (EPOCHS - 1), **step_overhead(trainer, batches=8, warmup=2))
print(json.dumps(line))
with open(Path(__file__).parent / "runs.ndjson", "a") as f:
    f.write(json.dumps(line) + "\n")
