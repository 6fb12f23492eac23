"""Is the low `none` score under AMP (0.054 on seed 0) ours or Ultralytics'? Train the tuning set's student with the
sweep's settings, seed 0, AMP on, once with plain Ultralytics (DetectionTrainer) and once through KDTrainer with
method=none, and print both final mAP50-95. Usage: python docs/tune64-gpu/amp_check.py OUT_DIR (after the sweep has
generated datasets/shapes-tune64)."""

import sys
import time
from pathlib import Path

from ultralytics.models.yolo.detect import DetectionTrainer

from yolo_kd import KDTrainer
from yolo_kd.runs import read_results

out = Path(sys.argv[1])
data = Path("datasets/shapes-tune64/data.yaml")
while not data.exists():
    time.sleep(5)
time.sleep(10)
args = dict(model="yolov8n.yaml", data=str(data), epochs=20, imgsz=64, batch=16, seed=0, device=0, amp=True, nbs=16,
            optimizer="AdamW", lr0=0.002, warmup_epochs=1, mosaic=0.0, scale=0.2, val=False, workers=1,
            project=str(Path("runs/amp_check").resolve()), exist_ok=True, plots=False)
lines = []
for name, trainer in (("plain_ultralytics", DetectionTrainer), ("kdtrainer_none", KDTrainer)):
    extra = {"method": "none"} if trainer is KDTrainer else {}
    t = trainer(overrides={**args, **extra, "name": name})
    t.train()
    last = read_results(t.save_dir)[-1]
    lines.append(f"{name}: amp=True seed=0 mAP50-95={last['metrics/mAP50-95(B)']:.4f} "
                 f"box_loss={last['train/box_loss']:.3f} amp_used={t.amp}")
    print(lines[-1], flush=True)
(out / "amp_check.txt").write_text("\n".join(lines) + "\n")
