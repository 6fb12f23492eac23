"""Step-time overhead of distillation, measured in one process on the same batches:

    ratio = t(KD training step) / ( t(student-only training step) + t(teacher forward) )

A ratio of 1.0 means the KD loss itself costs nothing beyond running both networks.
"""

from __future__ import annotations

import time

import torch

from ultralytics.utils.torch_utils import unwrap_model


def _timed(fn, device: torch.device, amp: bool | torch.dtype = False) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    dtype = amp if isinstance(amp, torch.dtype) else None
    with torch.autocast(device.type, dtype=dtype, enabled=bool(amp)):  # as Ultralytics' step: mixed precision if AMP
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
        tap = crit.backbone_tap  # the teacher-neck term's hooks, off once training has ended

        def kd_loss(b):
            if tap is None:
                return student.loss(b)[0].sum()
            tap.attach()
            try:
                return student.loss(b)[0].sum()
            finally:
                tap.detach()

        def plain_loss(b):
            return crit.base(student(b["img"]), b)[0].sum()

    amp = torch.bfloat16 if getattr(trainer.args, "amp", None) == "bf16" else bool(getattr(trainer, "amp", False))
    model.train()
    times = {"kd_step": [], "student_step": [], "teacher_forward": []}
    # a fresh loader (the training loader's workers are closed once training ends), read in full before timing so
    # that its workers do not compete with the timed steps for the CPU
    loader = trainer.get_dataloader(trainer.data["train"], batch_size=trainer.batch_size, rank=-1, mode="train")
    raw, it = [], iter(loader)
    while len(raw) < batches + warmup:
        try:
            raw.append(next(it))
        except StopIteration:
            it = iter(loader)
    del it
    for i, b in enumerate(raw):
        batch = trainer.preprocess_batch(dict(b))  # a copy: the read batches stay on the CPU
        steps = {
            "kd_step": lambda: kd_loss(batch).backward(),
            "student_step": lambda: plain_loss(batch).backward(),
            "teacher_forward": lambda: torch.no_grad()(teacher_fn)(batch["img"]),
        }
        for name, fn in steps.items():
            t = _timed(fn, device, amp)
            if i >= warmup:
                times[name].append(t)
        trainer.optimizer.zero_grad()
    out = {k: sorted(v)[len(v) // 2] for k, v in times.items()}  # medians
    out["ratio"] = out["kd_step"] / (out["student_step"] + out["teacher_forward"])
    return out
