"""CUDA only (skipped on CPU machines, such as CI): AMP distillation and AutoBatch with the teacher counted."""

import csv
import math

import pytest
import torch

from conftest import setup_with_batch, tiny_overrides

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_amp_distillation_on_cuda(workdir, tiny_data, tiny_teacher):
    """amp=True: the teacher runs under the student's autocast, KD terms are finite and in float32, and the
    GradScaler steps the student and the KD modules."""
    from ultralytics.utils.torch_utils import unwrap_model

    from yolo_kd import KDTrainer

    t, batch = setup_with_batch(tiny_overrides(workdir, tiny_data, tiny_teacher, "cuda-amp", device="0", amp=True,
                                               epochs=2, kd="paper_all", kd_warmup=0))
    assert t.amp and t.scaler.is_enabled()
    student = unwrap_model(t.model)
    with torch.autocast("cuda"):
        loss, items = student.loss(batch)
    crit = student.criterion
    teacher_out = crit.teacher(batch["img"])
    preds = student(batch["img"])
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")  # the KD step (forward and backward) never waits for the GPU
    try:
        from yolo_kd.teacher import head_outputs

        terms = t.distiller(head_outputs(preds), teacher_out, crit.tap.fg_mask, crit.tap.labels, batch)
        sum(terms.values()).backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert all(math.isfinite(float(items[k])) and float(items[k]) > 0 for k in t.distiller.terms)
    t.scaler.scale(loss.sum()).backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in t.distiller.parameters())

    t = KDTrainer(overrides=tiny_overrides(workdir, tiny_data, tiny_teacher, "cuda-amp-train", device="0", amp=True,
                                           epochs=2, kd="paper_all", kd_warmup=0, batch=-1))
    t.train()
    rows = [{k.strip(): float(v) for k, v in r.items()} for r in csv.DictReader(open(t.save_dir / "results.csv"))]
    assert len(rows) == 2
    assert all(r["train/fr_loss"] > 0 and math.isfinite(r["train/nckd_loss"]) for r in rows)
    assert t.batch_size != -1  # AutoBatch chose a size
