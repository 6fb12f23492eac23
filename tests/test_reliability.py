"""Bad inputs fail before anything is written; NaN KD terms are dropped; resume after SIGKILL; DDP relaunch."""

import csv
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from conftest import setup_with_batch, tiny_overrides


def _kd_trainer(**kw):
    from yolo_kd import KDTrainer

    return KDTrainer(overrides=kw)


@pytest.fixture()
def bad(workdir, tiny_data, tiny_teacher):
    """Overrides for a run named 'bad-<case>' and a check that no weights were written for it."""

    def make(case, **kw):
        return tiny_overrides(workdir, tiny_data, tiny_teacher, f"bad-{case}", **kw)

    yield make
    assert not list((workdir / "runs").glob("bad-*/weights/*.pt"))


def _raises(overrides, match, exc=Exception):
    with pytest.raises(exc, match=match):
        _kd_trainer(**overrides)
    run_dir = __import__("pathlib").Path(overrides["project"]) / overrides["name"]
    assert not run_dir.exists(), f"{run_dir} was created"


def test_missing_teacher(bad):
    _raises(bad("missing", teacher="no/such/teacher.pt"), "not found.*train a teacher first")


def test_corrupt_teacher(bad, tmp_path):
    f = tmp_path / "corrupt.pt"
    f.write_bytes(b"not a checkpoint")
    _raises(bad("corrupt", teacher=str(f)), "could not be loaded")


def test_teacher_not_a_detector(bad, tmp_path):
    from ultralytics.nn.tasks import ClassificationModel

    f = tmp_path / "cls.pt"
    torch.save({"model": ClassificationModel("yolov8n-cls.yaml", nc=6, verbose=False)}, f)
    _raises(bad("cls", teacher=str(f)), "is a classification model")


def test_teacher_classes_differ_from_data(bad, workdir):
    from yolo_kd.datasets.shapes import generate

    other = generate(root=str(workdir / "data3"), train=4, val=2, imgsz=64)
    text = other.read_text()
    for name in ("circle", "square", "triangle", "cross", "ring", "star"):
        text = text.replace(f": {name}", f": {name}_x")  # no class shared with the teacher
    other.write_text(text)
    _raises(bad("names", data=str(other)), "teacher classes .* share no class .*class_map=.*allow_class_mismatch=True")


def test_stride_mismatch(bad):
    _raises(bad("stride", model="yolov8n-p2.yaml"), "strides .* differ")


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"sam_tmp": 1}, "'sam_tmp' is not a valid .*Did you mean 'sam_temp'"),
        ({"tckd": -1}, "'tckd=-1.0' must be a finite, non-negative"),
        ({"fam": "abc"}, "'fam=abc' must be a number"),
        ({"method": "fitnet"}, "'method=fitnet' is not one of"),
        ({"fr_mask": 1.5}, "must lie in"),
        ({"teacher": None}, "needs a teacher"),
    ],
)
def test_bad_kd_keys(bad, kw, match):
    _raises({**bad("key"), **kw}, match)


def test_cli_error_is_one_line(workdir, tiny_data):
    r = subprocess.run([sys.executable, "-m", "yolo_kd.cli", "train", "model=yolov8n.yaml", f"data={tiny_data}",
                        "teacher=missing.pt", f"project={workdir / 'runs'}", "name=bad-cli"], capture_output=True, text=True)
    assert r.returncode == 1
    assert r.stderr.strip().startswith("yolo-kd: error: teacher 'missing.pt' not found")
    assert len(r.stderr.strip().splitlines()) == 1


def test_non_finite_kd_term_falls_back_to_yolo_loss(workdir, tiny_data, tiny_teacher):
    from ultralytics.utils.torch_utils import unwrap_model

    t, batch = setup_with_batch(tiny_overrides(workdir, tiny_data, tiny_teacher, "nan", kd_warmup=0, kd="paper_all"))
    student = unwrap_model(t.model)
    t.distiller.fam.forward = lambda *a, **k: torch.tensor(float("nan"))
    preds = student(batch["img"])
    loss, items = student.loss(batch, preds)
    plain, _ = student.criterion.base(preds, batch)
    assert torch.isfinite(loss).all()
    assert torch.allclose(loss.sum(), plain.sum())
    assert items["fam_loss"] == 0 and student.criterion.pop_bad_terms() == {"fam_loss": 1}


@pytest.mark.slow
def test_resume_after_sigkill(workdir, tiny_data, tiny_teacher):
    o = tiny_overrides(workdir, tiny_data, tiny_teacher, "resume", epochs=3, kd_warmup=0, save_period=1,
                       kd="paper_all")
    run = workdir / "runs" / "resume"
    p = subprocess.Popen([sys.executable, "-m", "yolo_kd.cli", "train", *[f"{k}={v}" for k, v in o.items()]])
    deadline = time.time() + 300
    ckpt = {}
    kd = {}
    while not kd and time.time() < deadline and p.poll() is None:  # first complete checkpoint and its KD sidecar
        time.sleep(0.1)
        try:
            kd = torch.load(run / "weights" / "kd_last.pt", map_location="cpu", weights_only=False)
            ckpt = torch.load(run / "weights" / "last.pt", map_location="cpu", weights_only=False)
        except (FileNotFoundError, RuntimeError, EOFError):
            kd = {}
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert ckpt["epoch"] < 2 and kd["state"]  # killed before the end, KD modules saved
    subprocess.run([sys.executable, "-m", "yolo_kd.cli", "train", "resume=True", f"model={run / 'weights' / 'last.pt'}"],
                   check=True)
    rows = [{k.strip(): float(v) for k, v in r.items()} for r in csv.DictReader(open(run / "results.csv"))]
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert all(r["train/fr_loss"] > 0 and r["train/nckd_loss"] > 0 for r in rows)


def test_ddp_relaunch_rebuilds_kd_trainer(workdir, tiny_data, tiny_teacher):
    """The script Ultralytics generates for DDP ranks reconstructs a KDTrainer with identical KD settings."""
    from ultralytics.utils import DEFAULT_CFG_DICT
    from ultralytics.utils.dist import generate_ddp_file
    from ultralytics.utils.patches import torch_load

    t = _kd_trainer(**tiny_overrides(workdir, tiny_data, tiny_teacher, "ddp", kd="paper", fam=0.5))
    with t._kd_keys_in_args():
        file = generate_ddp_file(t)
    assert not hasattr(t.args, "fam")  # the parent's Ultralytics args stay clean
    assert "trainer.train()" in open(file).read()
    state = torch_load(file.replace(".py", ".pt"), map_location="cpu")
    rank = state["trainer"](cfg={**DEFAULT_CFG_DICT, "save_dir": ""}, overrides=state["args"], _callbacks=state["callbacks"])
    assert type(rank).__name__ == "KDTrainer"
    assert rank.kd_cfg.as_dict() == t.kd_cfg.as_dict() and rank.kd_cfg.fam == 0.5
    assert rank.teacher_model is not None and rank.teacher_model is not t.teacher_model  # reloaded from its path
    os.remove(file)
    os.remove(file.replace(".py", ".pt"))


@pytest.mark.slow
def test_yolo26_end_to_end_student(workdir, tiny_data, tiny_teacher):
    t = _kd_trainer(**tiny_overrides(workdir, tiny_data, tiny_teacher, "e2e", model="yolo26n.yaml", kd_warmup=0,
                                    kd="paper_all"))
    t.train()
    row = next(csv.DictReader(open(workdir / "runs" / "e2e" / "results.csv")))
    row = {k.strip(): float(v) for k, v in row.items()}
    assert row["train/fr_loss"] > 0 and row["train/tckd_loss"] > 0  # v8 teacher -> YOLO26 student keeps DKD


def test_yolo26_one2one_branch_distilled(workdir, tiny_data, tiny_teacher):
    """kd_branch=one2one: logit terms read the one2one scores (its own assigner), features still train the backbone."""
    from ultralytics.utils.torch_utils import unwrap_model

    t, batch = setup_with_batch(tiny_overrides(workdir, tiny_data, tiny_teacher, "e2e-o2o", model="yolo26n.yaml",
                                               kd_warmup=0, kd_branch="one2one", kd="paper_all"))
    student = unwrap_model(t.model)
    crit = student.criterion
    assert crit.branch == "one2one" and crit.tap is crit.base.one2one.assigner
    loss, items = student.loss(batch)
    assert {"tckd_loss", "nckd_loss", "bgkd_loss"} <= set(t.distiller.terms)  # logit terms read the one2one scores
    assert all(torch.isfinite(items[k]) and items[k] > 0 for k in t.distiller.terms)
    loss.sum().backward()
    assert student.model[0].conv.weight.grad.abs().sum() > 0


@pytest.mark.slow
@pytest.mark.parametrize("teacher, student", [("yolov8l.yaml", "yolov8n.yaml"), ("yolov8s.yaml", "yolo11n.yaml"),
                                              ("yolo11s.yaml", "yolov8n.yaml")])
def test_cross_family_levels_are_aligned(workdir, tiny_data, tiny_teacher, teacher, student):
    """Different families and widths: adapters match channels and levels; every paper term is finite and trains."""
    from ultralytics.utils.torch_utils import unwrap_model

    t, batch = setup_with_batch(tiny_overrides(workdir, tiny_data, tiny_teacher, f"x-{teacher[:-5]}-{student[:-5]}",
                                               model=student, teacher=teacher, kd_warmup=0,
                                               kd="paper_all"))
    loss, items = unwrap_model(t.model).loss(batch)
    assert "tn_loss" in t.distiller.terms and all(torch.isfinite(items[k]) for k in t.distiller.terms)
    # an untrained (YAML) teacher's neck predicts about the same for any input, so its tn_loss is ~1e-8 (rounding may
    # make it negative); test_trainer asserts tn_loss > 0 under a trained teacher
    assert all(items[k] > 0 for k in t.distiller.terms if k != "tn_loss") and abs(items["tn_loss"]) < 1e-3
    loss.sum().backward()
    assert all(p.grad is not None for p in t.distiller.fam.parameters() if p.requires_grad)
    assert all(p.grad is not None for p in t.distiller.tn.parameters())


@pytest.mark.slow
def test_trainer_options_work_with_kd(workdir, tiny_data, tiny_teacher):
    """batch=-1, cache=ram, rect, close_mosaic and freeze train with KD; compile=True is turned off with a warning."""
    o = tiny_overrides(workdir, tiny_data, tiny_teacher, "options", epochs=2, batch=-1, cache="ram", rect=True,
                       close_mosaic=1, freeze=3, compile=True, kd_warmup=0, kd="paper_all")
    t = _kd_trainer(**o)
    t.train()
    assert t.args.compile is False and t.batch_size == 16  # AutoBatch falls back to 16 on CPU
    student = t.model
    assert not any(p.requires_grad for p in student.model[:3].parameters())
    rows = [{k.strip(): v for k, v in r.items()} for r in csv.DictReader(open(workdir / "runs" / "options" / "results.csv"))]
    assert len(rows) == 2
    assert all(float(r["train/fr_loss"]) > 0 and float(r["train/tckd_loss"]) > 0 for r in rows)


def test_teacher_yaml_takes_the_data_classes(workdir, tiny_data):
    from yolo_kd.teacher import load_teacher

    names = {0: "a", 1: "b"}
    m = load_teacher("yolov8n.yaml", names=names)
    assert m.names == names and m.model[-1].nc == 2


def test_autobatch_profiles_student_step_plus_teacher(workdir, tiny_data, tiny_teacher):
    """What `batch=-1` profiles on a GPU: the module runs both networks through Ultralytics' profiler."""
    from ultralytics.nn.tasks import DetectionModel
    from ultralytics.utils.torch_utils import profile_ops

    from yolo_kd.trainer import _StudentAndTeacher
    from yolo_kd.teacher import load_teacher

    student = DetectionModel("yolov8n.yaml", nc=6, verbose=False)
    both = _StudentAndTeacher(student, load_teacher(tiny_teacher))
    s_out, t_out = both(torch.zeros(2, 3, 64, 64))
    assert isinstance(s_out, dict) and "feats" in s_out and not t_out[0].requires_grad
    both_profile = profile_ops([torch.empty(2, 3, 64, 64)], both, n=1, device=torch.device("cpu"), max_num_obj=4)[0]
    alone = profile_ops([torch.empty(2, 3, 64, 64)], student, n=1, device=torch.device("cpu"), max_num_obj=4)[0]
    assert both_profile[0] > alone[0] and both_profile[1] > alone[1]  # params and GFLOPs include the teacher


def _gloo_rank(rank: int, port: int, out) -> None:
    import torch.distributed as dist

    from yolo_kd.trainer import average_gradients

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    a, b = torch.nn.Parameter(torch.zeros(3)), torch.nn.Parameter(torch.zeros(2))
    a.grad = torch.full((3,), float(rank + 1))  # rank 0: 1, rank 1: 2 -> mean 1.5
    if rank == 0:
        b.grad = torch.tensor([4.0, 8.0])  # rank 1 never used b: its zeros still join -> [2, 4]
    average_gradients([a, b], 2)
    out[rank] = (a.grad.tolist(), b.grad.tolist())
    dist.destroy_process_group()


def test_kd_gradients_are_averaged_across_two_gloo_ranks():
    """A real 2-process gloo group on CPU runs the averaging that optimizer_step applies to the KD modules."""
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    out = mp.Manager().dict()
    mp.spawn(_gloo_rank, args=(port, out), nprocs=2, join=True)
    assert out[0] == out[1] == ([1.5, 1.5, 1.5], [2.0, 4.0])
