"""Step-time overhead of distillation, measured in one process on the same batches:

    ratio = t(KD training step) / ( t(student-only training step) + t(teacher forward) )

A ratio of 1.0 means the KD loss itself costs nothing beyond running both networks.
"""

from __future__ import annotations

import time

import torch

from ultralytics.utils.torch_utils import unwrap_model


def _timed(fn, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t0


def step_overhead(trainer, batches: int = 6, warmup: int = 2) -> dict:
    """Time the three steps on `batches` training batches of a trained `trainer` (KDTrainer, or Ultralytics'
    trainer with `distill_model`). Returns {'kd_step', 'student_step', 'teacher_forward', 'ratio'} in seconds."""
    model = unwrap_model(trainer.model)
    device = trainer.device
    if hasattr(model, "student_model"):  # Ultralytics' DistillationModel
        student, teacher_fn = model.student_model, model.teacher_model
        kd_loss = lambda b: model.loss(b)[0].sum()  # noqa: E731
        plain_loss = lambda b: student.loss(b)[0].sum()  # noqa: E731
    else:  # KDTrainer: the student's criterion is a KDCriterion
        student, crit = model, getattr(model, "criterion", None)
        if not hasattr(crit, "teacher"):
            return {}  # no distillation in this run
        teacher_fn = crit.teacher

        def kd_loss(b):
            return student.loss(b)[0].sum()

        def plain_loss(b):
            return crit.base(student(b["img"]), b)[0].sum()

    model.train()
    times = {"kd_step": [], "student_step": [], "teacher_forward": []}
    # a fresh loader: the training loader's workers are closed once training ends
    loader = trainer.get_dataloader(trainer.data["train"], batch_size=trainer.batch_size, rank=-1, mode="train")
    it = iter(loader)
    for i in range(batches + warmup):
        try:
            batch = trainer.preprocess_batch(next(it))
        except StopIteration:
            it = iter(loader)
            batch = trainer.preprocess_batch(next(it))
        steps = {
            "kd_step": lambda: kd_loss(batch).backward(),
            "student_step": lambda: plain_loss(batch).backward(),
            "teacher_forward": lambda: torch.no_grad()(teacher_fn)(batch["img"]),
        }
        for name, fn in steps.items():
            t = _timed(fn, device)
            if i >= warmup:
                times[name].append(t)
        trainer.optimizer.zero_grad()
    out = {k: sorted(v)[len(v) // 2] for k, v in times.items()}  # medians
    out["ratio"] = out["kd_step"] / (out["student_step"] + out["teacher_forward"])
    return out
