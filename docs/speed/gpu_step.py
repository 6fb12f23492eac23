"""Step ratio and peak CUDA memory of `paper` (the package defaults) or Ultralytics' built-in distillation on a GPU.

    python docs/speed/gpu_step.py VARIANT IMGSZ BATCH DATA TEACHER_YAML [AMP] [REPS]

VARIANT is `paper` or `builtin`; AMP is `true` (default, as Ultralytics trains on a GPU) or `false`. The teacher is
built from TEACHER_YAML with the data's classes and saved as an untrained checkpoint (step time does not depend on its
weights), so that both variants load it by path as users do. Each repeat prints one JSON line:
`yolo_kd.timing.step_overhead` (KD step, student step and teacher forward on the same batches, under the trainer's
autocast; medians of 20) and the peak CUDA memory allocated so far, in MiB."""

import json
import sys
from pathlib import Path

import torch
import yaml

from yolo_kd.offline import use_offline_mode

use_offline_mode()
from ultralytics.models.yolo.detect import DetectionTrainer  # noqa: E402
from ultralytics.nn.tasks import DetectionModel  # noqa: E402

from yolo_kd import KDTrainer  # noqa: E402
from yolo_kd.timing import step_overhead  # noqa: E402


def untrained_teacher(cfg: str, data: str) -> str:
    """Save DetectionModel(cfg) with the data's classes as an Ultralytics checkpoint; return its path."""
    names = yaml.safe_load(Path(data).read_text())["names"]
    path = Path("/tmp/gpu_step") / f"{Path(cfg).stem}-nc{len(names)}.pt"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        model = DetectionModel(cfg, nc=len(names), verbose=False)
        model.names = dict(names)
        torch.save({"model": model.half(), "train_args": {}}, path)
    return str(path)


variant, imgsz, batch, data, teacher_cfg = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
amp = (sys.argv[6] if len(sys.argv) > 6 else "true").lower() == "true"
reps = int(sys.argv[7]) if len(sys.argv) > 7 else 3
device = "0" if torch.cuda.is_available() else "cpu"
teacher = untrained_teacher(teacher_cfg, data)
common = dict(model="yolov8n.yaml", data=data, imgsz=imgsz, batch=batch, nbs=batch, device=device, epochs=1, amp=amp,
              plots=False, val=False, project="/tmp/gpu_step", exist_ok=True, optimizer="AdamW", lr0=0.002,
              mosaic=0.0, scale=0.2, workers=8)
if variant == "builtin":
    trainer = DetectionTrainer(overrides=dict(distill_model=teacher, dis=6.0, name="builtin", **common))
else:
    trainer = KDTrainer(overrides=dict(teacher=teacher, name="paper", **common))
trainer._setup_train()
for rep in range(reps):
    r = step_overhead(trainer, batches=20, warmup=5)
    peak = torch.cuda.max_memory_allocated() / 2**20 if device != "cpu" else 0.0
    line = dict(variant=variant, imgsz=imgsz, batch=batch, teacher=Path(teacher_cfg).stem, amp=trainer.amp, rep=rep,
                device=torch.cuda.get_device_name() if device != "cpu" else "cpu", peak_cuda_mib=round(peak),
                **{k: round(v, 5) for k, v in r.items()})
    print(json.dumps(line), flush=True)
