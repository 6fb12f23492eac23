"""KDTrainer end to end at 64 px: CLI training, checkpoints, frozen teacher, adapters in the optimizer, KD-off
equivalence, ONNX export."""

import csv
import logging
import math
import subprocess
import sys

import pytest
import torch

from conftest import IMGSZ, setup_with_batch, tiny_overrides


def _setup(workdir, tiny_data, tiny_teacher, name, **kw):
    return setup_with_batch(tiny_overrides(workdir, tiny_data, tiny_teacher, name, **kw))


@pytest.fixture(scope="module")
def cli_run(workdir, tiny_data, tiny_teacher):
    """`yolo-kd train kd=paper_all ...` (every term of the paper's four ideas) for 1 epoch; returns its run directory."""
    o = tiny_overrides(workdir, tiny_data, tiny_teacher, "cli", kd="paper_all", kd_warmup=0, plots=True)
    args = [f"{k}={v}" for k, v in o.items()]
    subprocess.run([sys.executable, "-m", "yolo_kd.cli", "train", *args], check=True)
    return workdir / "runs" / "cli"


def test_cli_train_logs_kd_columns(cli_run):
    rows = list(csv.DictReader(open(cli_run / "results.csv")))
    assert len(rows) == 1
    row = {k.strip(): float(v) for k, v in rows[0].items()}
    kd_cols = ["fr_loss", "sam_loss", "fam_loss", "tckd_loss", "nckd_loss", "bgkd_loss"]
    for c in kd_cols:
        v = row[f"train/{c}"]
        assert math.isfinite(v) and v > 0, c
        assert f"val/{c}" in row  # same columns in validation
    assert (cli_run / "kd.yaml").exists()
    assert (cli_run / "results.png").stat().st_size > 0
    assert 0 < row["train/kd_ratio"] <= 1.0 + 1e-6  # sum(KD) / YOLO loss, capped by kd_budget=1


def test_fam_attention_is_logged_per_epoch(cli_run):
    """fam_alpha.csv: per epoch, the mean weight of each (student level, teacher level) pair; each level sums to 1."""
    rows = list(csv.DictReader(open(cli_run / "fam_alpha.csv")))
    assert len(rows) == 1 and rows[0]["epoch"] == "1"
    pairs = {k: float(v) for k, v in rows[0].items() if k != "epoch"}
    assert set(pairs) == {"s0_t0", "s0_t1", "s1_t0", "s1_t1", "s1_t2", "s2_t1", "s2_t2"}  # adjacent matching
    for i in range(3):
        assert sum(v for k, v in pairs.items() if k.startswith(f"s{i}_")) == pytest.approx(1.0, abs=1e-3)


def test_attention_maps_are_saved(cli_run, tiny_data, tiny_teacher, tmp_path):
    from yolo_kd.visualize import save_attention_maps

    out = save_attention_maps(model=str(cli_run / "weights" / "best.pt"), teacher=tiny_teacher, data=tiny_data, n=2,
                              imgsz=IMGSZ, save_dir=str(tmp_path))
    assert sorted(p.name for p in out.glob("*.png")) == ["attention_0.png", "attention_1.png"]


def test_checkpoint_holds_the_student_only_and_loads_in_plain_ultralytics(cli_run, tiny_data, tiny_teacher):
    from ultralytics import YOLO
    from ultralytics.nn.tasks import DetectionModel, load_checkpoint

    ckpt = torch.load(cli_run / "weights" / "best.pt", map_location="cpu", weights_only=False)
    model = ckpt["model"]
    assert type(model) is DetectionModel
    student_params = sum(p.numel() for p in DetectionModel("yolov8n.yaml", nc=6, verbose=False).parameters())
    teacher_params = sum(p.numel() for p in load_checkpoint(tiny_teacher)[0].parameters())
    assert sum(p.numel() for p in model.parameters()) == student_params != teacher_params
    assert not any(hasattr(model, a) for a in ("teacher", "teacher_model", "distiller"))
    assert getattr(model, "criterion", None) is None
    assert ckpt["kd"]["cfg"]["method"] == "paper" and ckpt["kd"]["teacher"] == tiny_teacher
    assert ckpt["kd"]["state"] is None  # KD modules are only kept while a run can still be resumed
    assert not list((cli_run / "weights").glob("kd_*.pt"))  # their sidecars go when the run finishes
    metrics = YOLO(str(cli_run / "weights" / "best.pt")).val(data=tiny_data, imgsz=IMGSZ, batch=8, plots=False)
    assert metrics.box.map == pytest.approx(ckpt["train_metrics"]["metrics/mAP50-95(B)"], abs=0.02)  # same weights
    results = YOLO(str(cli_run / "weights" / "best.pt")).predict(torch.rand(1, 3, IMGSZ, IMGSZ), verbose=False)
    assert len(results) == 1


def test_student_from_trained_weights_gets_the_finetuning_defaults(workdir, tiny_data, tiny_teacher):
    """model=*.pt turns on cfg/finetune.yaml's logit terms (recorded in kd.yaml); a YAML student and kd_finetune=''
    keep the from-scratch defaults."""
    import yaml

    from yolo_kd import KDTrainer

    def recorded(name, **kw):
        t = KDTrainer(overrides=tiny_overrides(workdir, tiny_data, tiny_teacher, name, **kw))
        kd = yaml.safe_load((t.save_dir / "kd.yaml").read_text())
        return kd["tckd"], kd["nckd"], kd["bgkd"]

    assert recorded("ft-pt", model=tiny_teacher) == (1.0, 2.0, 0.5)
    assert recorded("ft-yaml") == (0.0, 0.0, 0.0)
    assert recorded("ft-off", model=tiny_teacher, kd_finetune="") == (0.0, 0.0, 0.0)


def test_teacher_frozen_and_adapters_trained(workdir, tiny_data, tiny_teacher):
    from ultralytics.utils.torch_utils import unwrap_model

    from yolo_kd.criterion import KDCriterion

    t, batch = _setup(workdir, tiny_data, tiny_teacher, "grads", kd_warmup=0, kd="paper_all")
    student = unwrap_model(t.model)
    assert isinstance(student.criterion, KDCriterion)
    assert all(not p.requires_grad for p in t.teacher.model.parameters())
    assert not any(p is q for p in t.teacher.model.parameters() for q in student.parameters())
    assert "criterion" not in vars(t.ema.ema) or not isinstance(t.ema.ema.criterion, KDCriterion)
    before = {k: v.clone() for k, v in t.teacher.model.state_dict().items()}
    loss, items = t.model(batch)
    loss.sum().backward()
    tap = student.criterion.tap  # the assigner result the logit terms use
    assert tap.fg_mask.shape == tap.labels.shape and tap.fg_mask.any()
    for b in range(tap.labels.shape[0]):  # assigned classes are classes present in that image
        present = set(batch["cls"][batch["batch_idx"] == b].long().flatten().tolist())
        assert set(tap.labels[b][tap.fg_mask[b]].tolist()) <= present
    assert all(p.grad is None for p in t.teacher.model.parameters())
    opt_params = {id(p) for g in t.optimizer.param_groups for p in g["params"]}
    kd_params = list(t.distiller.parameters())
    assert kd_params and all(id(p) in opt_params for p in kd_params)
    assert sum(p.grad.abs().sum() for p in kd_params if p.grad is not None) > 0
    t.optimizer_step()
    after = t.teacher.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # bit-identical, BN buffers included
    assert set(items) >= {"box_loss", "cls_loss", "dfl_loss", "fr_loss", "tckd_loss"}


@pytest.mark.parametrize("clip", ["student", "joint"])
def test_amp_overflow_reaches_the_grad_scaler(workdir, tiny_data, tiny_teacher, clip):
    """Under AMP an overflowing gradient must make the GradScaler skip the step and lower its scale; the KD trainer's
    non-finite guard (and the joint clip) must not hide it (the guard did: every overflowing weight stayed frozen, and
    students learned nothing on CUDA). A CPU GradScaler stands in for the CUDA one."""
    from ultralytics.utils.torch_utils import unwrap_model

    t, batch = _setup(workdir, tiny_data, tiny_teacher, f"amp-{clip}", kd_warmup=0, kd_grad_clip=clip)
    t.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**16)
    student = unwrap_model(t.model)
    loss, _ = t.model(batch)
    t.scaler.scale(loss.sum()).backward()
    before = {k: v.clone() for k, v in student.state_dict().items() if v.is_floating_point()}  # BN stats moved
    next(p for p in student.parameters() if p.grad is not None).grad.view(-1)[0] = float("inf")  # an fp16 overflow
    t.optimizer_step()
    assert t.scaler.get_scale() == 2.0**15  # the scaler saw the overflow
    after = student.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # and skipped the step


@pytest.mark.parametrize("clip", ["student", "joint"])
def test_grad_clip_covers_the_kd_modules_only_when_joint(workdir, tiny_data, tiny_teacher, clip):
    """kd_grad_clip=joint: at the optimizer step, student + Distiller gradients have a joint norm of at most 10, as in
    Ultralytics' built-in (student + projector). student: the student is clipped alone, the Distiller not at all."""
    from ultralytics.utils.torch_utils import unwrap_model

    t, batch = _setup(workdir, tiny_data, tiny_teacher, f"clip-{clip}", kd_warmup=0, kd_grad_clip=clip)
    student = unwrap_model(t.model)
    loss, _ = t.model(batch)
    loss.sum().backward()
    kd_params = [p for p in t.distiller.parameters() if p.grad is not None]
    assert kd_params
    for p in kd_params:
        p.grad.mul_(1e4)  # KD modules far above the cap
    norms = {}

    def record():
        def norm(ps):
            return float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in ps if p.grad is not None])))

        norms.update(student=norm(student.parameters()), kd=norm(kd_params))

    t.optimizer.step = record
    t.optimizer_step()
    assert norms["student"] <= 10.0 + 1e-3
    if clip == "joint":
        assert math.hypot(norms["student"], norms["kd"]) <= 10.0 + 1e-3
        assert norms["student"] < 1.0  # scaled down with the KD modules' gradients
    else:
        assert norms["kd"] > 100.0


def test_kd_assign_gives_the_student_the_teachers_assignment(workdir, tiny_data, tiny_teacher):
    """In a real KD step with kd_assign=1 (schedule at 1), the student's positives are those the teacher's own
    predictions get, and the guide is gone after the step."""
    from ultralytics.utils.torch_utils import unwrap_model

    t, batch = _setup(workdir, tiny_data, tiny_teacher, "assign", kd_warmup=0, kd_assign=1.0)
    crit = unwrap_model(t.model).criterion
    assert crit.assign == 1.0 and crit.scale == 1.0
    t.model(batch)
    guided = crit.tap.fg_mask.clone()
    assert crit.tap.guide is None and guided.any()
    teacher = crit.teacher(batch["img"])
    crit.base({"feats": teacher.feats, "boxes": teacher.boxes, "scores": teacher.scores}, batch)
    assert torch.equal(guided, crit.tap.fg_mask)
    crit.base(unwrap_model(t.model)(batch["img"]), batch)
    assert not torch.equal(guided, crit.tap.fg_mask)  # the student's own assignment differs


@pytest.mark.parametrize("same_reg_max, same_classes, used", [(True, True, 0.5), (False, True, 0.0), (True, False, 0.0)])
def test_kd_assign_is_dropped_with_a_warning_when_the_teacher_cannot_guide(same_reg_max, same_classes, used):
    from types import SimpleNamespace

    from ultralytics.utils import LOGGER

    from yolo_kd.trainer import KDTrainer

    stub = SimpleNamespace(kd_cfg=SimpleNamespace(kd_assign=0.5),
                           distiller=SimpleNamespace(pair=SimpleNamespace(same_reg_max=same_reg_max,
                                                                          same_classes=same_classes)))
    warnings = []
    handler = type("H", (logging.Handler,), {"emit": lambda self, r: warnings.append(r.getMessage())})()
    LOGGER.addHandler(handler)
    try:
        assert KDTrainer._assign_share(stub) == used
    finally:
        LOGGER.removeHandler(handler)
    assert len(warnings) == (used == 0)
    assert all("kd_assign=0.5 is configured but not used: the teacher" in w for w in warnings)


def test_kd_scale_and_held_scale_follow_the_schedule():
    """Halfway through a cosine schedule the criterion gets scale 0.5 for the decaying terms and held_scale 1 for
    those in `kd_hold`; in the KD-free final epochs both are 0."""
    from types import SimpleNamespace

    from yolo_kd.config import KDConfig
    from yolo_kd.trainer import KDTrainer

    crit = SimpleNamespace(scale=None, held_scale=None)
    stub = SimpleNamespace(kd_cfg=KDConfig.from_overrides({"kd_hold": "th", "kd_off_last": 2}), epochs=22, epoch=10,
                           _batches_this_epoch=0, train_loader=[0] * 4, _kd_criterion=lambda: crit)
    KDTrainer.update_kd_scale(stub)
    assert crit.scale == pytest.approx(0.5) and crit.held_scale == 1.0 and stub._batches_this_epoch == 1
    stub.epoch = 20
    KDTrainer.update_kd_scale(stub)
    assert crit.scale == 0.0 and crit.held_scale == 0.0


def test_teacher_neck_term_in_a_real_kd_step(workdir, tiny_data, tiny_teacher):
    """tn>0 (the default from scratch): the trainer taps the student's neck inputs during the training batches; the
    step logs tn_loss and trains the term's projectors, and at the epoch's end (before validation, checkpoints or an
    EMA rebuild copy the model) no hook is left on the student."""
    from ultralytics.utils.torch_utils import unwrap_model

    t, batch = _setup(workdir, tiny_data, tiny_teacher, "neck", kd_warmup=0)
    student = unwrap_model(t.model)
    crit = student.criterion
    assert "tn_loss" in t.distiller.terms and crit.backbone_tap is not None
    assert all(m._forward_hooks for m in crit.backbone_tap.layers)
    loss, items = t.model(batch)
    assert torch.isfinite(items["tn_loss"]) and items["tn_loss"] > 0 and crit.backbone_tap.outputs == {}
    loss.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in t.distiller.tn.parameters())
    t.run_callbacks("on_train_epoch_end")
    assert not any(m._forward_hooks for m in student.modules())
    t.run_callbacks("on_train_batch_start")
    assert all(m._forward_hooks for m in crit.backbone_tap.layers)


def test_kd_with_zero_weights_equals_plain_yolo_loss(workdir, tiny_data, tiny_teacher):
    from ultralytics.utils.torch_utils import unwrap_model

    zero = dict(fr=0, th=0, tn=0, sam=0, fam=0, tckd=0, nckd=0, bgkd=0, ld=0)
    t, batch = _setup(workdir, tiny_data, tiny_teacher, "zero", **zero)
    student = unwrap_model(t.model)
    assert t.distiller.terms == ()
    preds = student(batch["img"])
    kd_loss, kd_items = student.loss(batch, preds)
    plain_loss, plain_items = student.init_criterion()(preds, batch)  # what DetectionTrainer computes
    assert torch.allclose(kd_loss.sum(), plain_loss.sum())
    assert kd_items.keys() == plain_items.keys()


def test_onnx_export_matches_pytorch(cli_run):
    from yolo_kd.export import export

    f, diff = export(cli_run / "weights" / "best.pt", format="onnx", imgsz=IMGSZ)
    assert f.endswith(".onnx")
    assert diff < 1e-3


def test_method_none_equals_plain_detection_trainer(workdir, tiny_data):
    """The benchmark's fairness claim: `method=none` is Ultralytics' DetectionTrainer, bit for bit. Same seed, same
    threads, 2 CPU epochs: identical loss and metric columns in results.csv."""
    from ultralytics.models.yolo.detect import DetectionTrainer

    from yolo_kd import KDTrainer
    from yolo_kd.trainer import use_all_cpu_cores

    common = dict(model="yolov8n.yaml", data=tiny_data, epochs=2, imgsz=IMGSZ, batch=8, device="cpu", plots=False,
                  seed=3, project=str(workdir / "runs"), exist_ok=True, workers=0)
    KDTrainer(overrides=dict(method="none", name="eq-none", **common)).train()
    plain = DetectionTrainer(overrides=dict(name="eq-plain", **common))
    plain.add_callback("on_train_start", lambda tr: use_all_cpu_cores())  # KDTrainer uses every core on CPU
    plain.train()

    def columns(name):
        rows = list(csv.DictReader(open(workdir / "runs" / name / "results.csv")))
        return [{k.strip(): v for k, v in r.items() if "loss" in k or "metrics" in k} for r in rows]

    none, ref = columns("eq-none"), columns("eq-plain")
    assert len(none) == 2 and none == ref
