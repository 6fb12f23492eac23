"""Any teacher you have: class-mapped teachers, 1-channel data, and the `yolo-kd check` plan."""

from __future__ import annotations

import csv

import pytest
import torch

from conftest import IMGSZ, setup_with_batch, tiny_overrides

SHAPES = ("circle", "square", "triangle", "cross", "ring", "star")


def _data_variant(workdir, tiny_data, name: str, names: list[str] | None = None, channels: int | None = None) -> str:
    """A copy of the tiny data.yaml pointing at the same images, with other class names or channels."""
    import yaml

    d = yaml.safe_load(open(tiny_data))
    if names is not None:
        d["names"] = dict(enumerate(names))
    if channels is not None:
        d["channels"] = channels
    f = workdir / f"{name}.yaml"
    f.write_text(yaml.safe_dump(d, sort_keys=False))
    return str(f)


def test_mapped_teacher_distils_logits_in_the_students_order(workdir, tiny_data, tiny_teacher):
    """The data names the teacher's classes in reverse order: they are mapped by name, logit terms are built and
    read the teacher's score of each student class."""
    from ultralytics.utils.torch_utils import unwrap_model

    data = _data_variant(workdir, tiny_data, "reversed", names=list(reversed(SHAPES)))
    t, batch = setup_with_batch(tiny_overrides(workdir, tiny_data, tiny_teacher, "mapped", data=data, kd_warmup=0,
                                               kd="paper_all", kd_assign=1.0))
    assert t.distiller.class_index.tolist() == [5, 4, 3, 2, 1, 0]
    assert {"tckd_loss", "nckd_loss", "bgkd_loss"} <= set(t.distiller.terms)
    calls = []
    map_classes = t.distiller.map_classes
    t.distiller.map_classes = lambda *a: calls.append(1) or map_classes(*a)
    loss, items = unwrap_model(t.model).loss(batch)
    assert all(torch.isfinite(items[k]) and items[k] > 0 for k in t.distiller.terms)
    assert len(calls) == 1  # one mapping per batch serves the assignment guide and the KD terms


def test_class_map_renames_and_refusal(workdir, tiny_data, tiny_teacher):
    from yolo_kd import KDTrainer
    from yolo_kd.teacher import TeacherError

    renamed = _data_variant(workdir, tiny_data, "renamed", names=[f"{n}_x" for n in SHAPES])
    with pytest.raises(TeacherError, match="share no class .*class_map="):
        KDTrainer(overrides=tiny_overrides(workdir, tiny_data, tiny_teacher, "refused", data=renamed))
    assert not (workdir / "runs" / "refused").exists()
    cmap = "{" + ", ".join(f"{n}_x: {n}" for n in SHAPES[:3]) + "}"  # partial: three classes mapped
    t, _ = setup_with_batch(tiny_overrides(workdir, tiny_data, tiny_teacher, "renamed", data=renamed, class_map=cmap,
                                           kd="paper_all"))
    assert t.distiller.class_index.tolist() == [0, 1, 2, -1, -1, -1] and "tckd_loss" in t.distiller.terms


def test_one_channel_data_trains_validates_and_exports(workdir, tiny_data):
    """`channels: 1` data: a YAML teacher is built with 1 input channel, KD trains and validates, the student exports."""
    from yolo_kd import KDTrainer
    from yolo_kd.export import export

    data = _data_variant(workdir, tiny_data, "gray", channels=1)
    t = KDTrainer(overrides=tiny_overrides(workdir, tiny_data, "yolov8s.yaml", "gray", data=data, kd_warmup=0,
                                                 kd="paper_all"))
    t.train()
    row = {k.strip(): float(v) for k, v in next(csv.DictReader(open(t.save_dir / "results.csv"))).items()}
    assert row["train/fr_loss"] > 0 and row["train/tckd_loss"] > 0
    assert t.model.model[0].conv.in_channels == 1
    f, diff = export(t.best, format="onnx", imgsz=IMGSZ)
    assert diff < 1e-3


def test_rgb_teacher_for_one_channel_data_is_refused(workdir, tiny_data, tiny_teacher):
    from yolo_kd import KDTrainer
    from yolo_kd.teacher import TeacherError

    data = _data_variant(workdir, tiny_data, "gray2", channels=1)
    with pytest.raises(TeacherError, match="takes 3-channel images but the data has 1 channel"):
        KDTrainer(overrides=tiny_overrides(workdir, tiny_data, tiny_teacher, "gray-rgb", data=data))


def test_check_prints_the_plan_and_exit_status(capsys, workdir, tiny_data, tiny_teacher):
    from yolo_kd.cli import main

    rc = main(["check", f"teacher={tiny_teacher}", "student=yolov8n.yaml", f"data={tiny_data}", f"imgsz={IMGSZ}", "ld=1",
                 "kd=paper_all"])
    out = capsys.readouterr().out
    assert rc == 0, out
    for text in ("level P3 (stride  8): student   64 ch -> teacher  128 ch", "classes: identical", "adapter fam:",
                 "terms built: fr_loss", "ld_loss (x1)", "teacher forward ~", "ok: `yolo-kd train`"):
        assert text in out, text
    renamed = _data_variant(workdir, tiny_data, "renamed2", names=[f"{n}_x" for n in SHAPES])
    rc = main(["check", f"teacher={tiny_teacher}", "student=yolov8n.yaml", f"data={renamed}"])
    out = capsys.readouterr().out
    assert rc == 1 and out.strip().splitlines()[-1].startswith("refused: teacher and data share no class")


@pytest.mark.parametrize("on", [True, False])
def test_unlabeled_teacher_classes_lower_the_mapped_scores(on):
    """Teacher classes 0-3; the data labels teacher classes 2 and 0 (in that order). Where the teacher sees class 3
    (not labelled by the data), the mapped probabilities become q * (1 - r) with `unlabeled_as_background`, and stay
    q without it; where no unlabeled class fires they are unchanged."""
    from yolo_kd.config import KDConfig
    from yolo_kd.distiller import Distiller
    from yolo_kd.teacher import HeadOutputs

    cfg = KDConfig.from_overrides({"method": "paper", "unlabeled_as_background": on})
    d = Distiller(cfg, [8, 8, 8], [8, 8, 8], 16, nc=2, class_index=(2, 0), t_nc=4)
    assert d.unlabeled_index.tolist() == [1, 3]
    t_scores = torch.tensor([[[2.0, -1.0], [-9.0, -9.0], [1.0, 0.5], [-9.0, 3.0]]])  # (1, 4 teacher classes, 2 anchors)
    student = HeadOutputs([], torch.zeros(1, 64, 2), torch.zeros(1, 2, 2))
    mapped = d.map_classes(student, HeadOutputs([], torch.zeros(1, 64, 2), t_scores)).scores.sigmoid()
    q = t_scores[:, [2, 0]].sigmoid()
    r = t_scores[:, [1, 3]].sigmoid().amax(1, keepdim=True)
    expected = q * (1 - r) if on else q
    assert torch.allclose(mapped, expected, atol=1e-6)
    assert torch.allclose(mapped[..., 0], q[..., 0], atol=1e-3)  # anchor 0: no unlabeled class fires
    assert (mapped[..., 1] < 0.1).all() == on  # anchor 1: the teacher sees class 3 there
    identity = Distiller(cfg, [8, 8, 8], [8, 8, 8], 16, nc=4, class_index=None, t_nc=4)
    assert identity.unlabeled_index is None
