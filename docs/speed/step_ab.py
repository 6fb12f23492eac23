"""Step ratio of `paper` with the pointwise projector as matrix products (the CPU path) against its 1x1
convolutions, in one process on the same trainer, alternating; and, with `builtin` as first argument, Ultralytics'
built-in distillation on the same settings.

    python docs/speed/step_ab.py paper 64 16 datasets/shapes-bench64/data.yaml <teacher.pt> [reps]
    python docs/speed/step_ab.py builtin 64 16 datasets/shapes-bench64/data.yaml <teacher.pt> [reps]

Prints each measurement (yolo_kd.timing.step_overhead, medians of 10 batches) and the sorted ratios per variant."""

import sys

from torch import nn

from yolo_kd.offline import use_offline_mode

use_offline_mode()
from ultralytics.models.yolo.detect import DetectionTrainer  # noqa: E402

from yolo_kd import KDTrainer  # noqa: E402
from yolo_kd.losses.common import PointwiseProjector  # noqa: E402
from yolo_kd.timing import step_overhead  # noqa: E402
from yolo_kd.trainer import use_all_cpu_cores  # noqa: E402

variant, imgsz, batch, data, teacher = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
reps = int(sys.argv[6]) if len(sys.argv) > 6 else 4
common = dict(model="yolov8n.yaml", data=data, imgsz=imgsz, batch=batch, nbs=batch, device="cpu", epochs=1,
              plots=False, val=False, project="/tmp/step_ab", exist_ok=True, optimizer="AdamW", lr0=0.002,
              mosaic=0.0, scale=0.2)
if variant == "builtin":
    trainer, modes = DetectionTrainer(overrides=dict(distill_model=teacher, dis=6.0, name="builtin", **common)), ["builtin"]
else:
    trainer, modes = KDTrainer(overrides=dict(teacher=teacher, name="paper", **common)), ["conv", "matmul"]
trainer._setup_train()
use_all_cpu_cores()
matmul = PointwiseProjector.forward
ratios = {m: [] for m in modes}
for _ in range(reps):
    for mode in modes:
        PointwiseProjector.forward = nn.Sequential.forward if mode == "conv" else matmul
        r = step_overhead(trainer, batches=10, warmup=2)
        ratios[mode].append(r["ratio"])
        print(mode, {k: round(v, 4) for k, v in r.items()}, flush=True)
for mode, rs in ratios.items():
    print(mode, "ratios", sorted(round(x, 3) for x in rs))
