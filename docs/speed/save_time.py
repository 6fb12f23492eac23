"""Median wall time of KDTrainer.save_model() (last.pt, best.pt and the KD state) for a yolov8s -> yolov8n run.

    python docs/speed/save_time.py TEACHER.pt DATA.yaml [YOLO_CONFIG_DIR] [KD preset]

Run against an older commit with PYTHONPATH pointing at a worktree of it (see docs/speed/save_time.md)."""

import os
import statistics
import sys
import time

from yolo_kd.offline import use_offline_mode

use_offline_mode(sys.argv[3] if len(sys.argv) > 3 else None)
from yolo_kd import KDTrainer  # noqa: E402

kd = {"kd": sys.argv[4]} if len(sys.argv) > 4 else {}
t = KDTrainer(overrides=dict(model="yolov8n.yaml", teacher=sys.argv[1], data=sys.argv[2], imgsz=64, batch=16,
                             device="cpu", epochs=3, plots=False, val=False, project="/tmp/savetime", name="s",
                             exist_ok=True, **kd))
t._setup_train()
t.epoch, t.metrics, t.fitness, t.best_fitness = 0, {"metrics/mAP50-95(B)": 0.0}, 0.0, 0.0
times = []
for _ in range(7):
    t0 = time.perf_counter()
    t.save_model()
    times.append(time.perf_counter() - t0)
print("save_model median s", round(statistics.median(times[1:]), 4), [round(x, 3) for x in times],
      "last.pt MB", round(os.path.getsize(t.last) / 1e6, 2))
