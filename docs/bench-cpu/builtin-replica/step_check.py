"""Train Ultralytics' built-in distillation and its replica in KDTrainer side by side for a few optimizer steps.

    python docs/bench-cpu/builtin-replica/step_check.py TEACHER.pt [STEPS]

Runs from the repository root after `yolo-kd bench preset=cfg/bench_cpu.yaml` has generated datasets/shapes-bench64.
Three runs with bench seed 0's settings: the built-in (`distill_model=TEACHER, dis=6.0`), the replica
(`kd=cfg/tune/paper_constant_nocap.yaml`), and the replica with its projector computed by nn.Conv2d instead of the
CPU matrix-product path (the same arithmetic in another order). Prints each step's losses and, after step 1, how many
student weights differ between the runs.
"""

from __future__ import annotations

import sys

import torch
from torch import nn
from ultralytics.models.yolo.detect import DetectionTrainer
from ultralytics.utils.torch_utils import unwrap_model

from yolo_kd.losses import common
from yolo_kd.runs import kd_overrides
from yolo_kd.trainer import KDTrainer

BENCH_SEED0 = dict(data="datasets/shapes-bench64/data.yaml", model="yolov8n.yaml", epochs=1, imgsz=64, batch=16,
                   nbs=16, optimizer="AdamW", lr0=0.002, warmup_epochs=3, mosaic=0.0, scale=0.2, val=False,
                   device="cpu", seed=0, deterministic=True, workers=0, plots=False, exist_ok=True,
                   project="runs/step_check")


class _Stop(Exception):
    pass


def run(kind: str, teacher: str, steps: int) -> tuple[list[list[float]], dict]:
    """Per-step loss items (box, cls, dfl, KD, ...) of the first `steps` batches and the student weights after step 1."""
    if kind == "builtin":
        trainer = DetectionTrainer(overrides=dict(distill_model=teacher, dis=6.0, name=kind, **BENCH_SEED0))
    else:
        forward = common.PointwiseProjector.forward
        if kind == "replica_conv":
            common.PointwiseProjector.forward = nn.Sequential.forward
        trainer = KDTrainer(overrides=dict(**kd_overrides("cfg/tune/paper_constant_nocap.yaml"), teacher=teacher,
                                           name=kind, **BENCH_SEED0))
    losses, after_step1 = [], {}

    def on_batch_end(tr):
        losses.append([float(v) for v in tr.loss_items.values()])
        if len(losses) == 1:
            student = unwrap_model(tr.model)
            student = getattr(student, "student_model", student)  # the built-in's wrapper
            after_step1.update({k: v.detach().clone() for k, v in student.state_dict().items() if v.is_floating_point()})
        if len(losses) == steps:
            raise _Stop

    trainer.add_callback("on_train_batch_end", on_batch_end)
    try:
        trainer.train()
    except _Stop:
        pass
    finally:
        if kind == "replica_conv":
            common.PointwiseProjector.forward = forward
    return losses, after_step1


def main(teacher: str, steps: int = 25) -> None:
    runs = {kind: run(kind, teacher, steps) for kind in ("builtin", "replica", "replica_conv")}
    print("step | built-in box cls dfl KD | replica | replica (nn.Conv2d projector)")
    for i in range(steps):
        print(i + 1, *(" ".join(f"{x:.6f}" for x in runs[k][0][i][:4]) for k in runs), sep=" | ")
    for a, b in (("builtin", "replica"), ("replica", "replica_conv"), ("builtin", "replica_conv")):
        wa, wb = runs[a][1], runs[b][1]
        diff = [(wa[k] - wb[k]).abs() for k in wa]
        n = sum(int((d > 0).sum()) for d in diff)
        print(f"after step 1, {a} vs {b}: {n} of {sum(d.numel() for d in diff)} student weights differ, "
              f"largest difference {max(float(d.max()) for d in diff):.2e}")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 25)
