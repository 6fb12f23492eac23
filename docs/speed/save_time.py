"""Median wall time of KDTrainer.save_model() (last.pt, best.pt and the KD state) for a yolov8s -> yolov8n run.

    python docs/speed/save_time.py TEACHER.pt DATA.yaml [YOLO_CONFIG_DIR] [KD preset]

Run against an older commit with PYTHONPATH pointing at a worktree of it (see docs/speed/save_time.md)."""
import sys, time, statistics
from yolo_kd.offline import use_offline_mode
use_offline_mode(sys.argv[3] if len(sys.argv) > 3 else None)
from yolo_kd import KDTrainer
t = KDTrainer(overrides=dict(model="yolov8n.yaml", teacher=sys.argv[1], data=sys.argv[2], imgsz=64, batch=16,
                             device="cpu", epochs=3, plots=False, val=False, project="/tmp/savetime", name="s", exist_ok=True, **({"kd": sys.argv[4]} if len(sys.argv) > 4 else {})))
t._setup_train()
t.epoch = 0
t.metrics = {"metrics/mAP50-95(B)": 0.0}
t.fitness = 0.0
t.best_fitness = 0.0
ts = []
for i in range(7):
    t0 = time.perf_counter(); t.save_model(); ts.append(time.perf_counter() - t0)
import os
print("save_model median s", round(statistics.median(ts[1:]), 4), [round(x, 3) for x in ts],
      "last.pt MB", round(os.path.getsize(t.last) / 1e6, 2))
