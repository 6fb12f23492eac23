"""Every command fails cleanly (issue 9): one line from the CLI, a ValueError subclass (or FileNotFoundError) from the
API, nothing left behind; checkpoints survive faults injected into their writes."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

import pytest
import torch

from conftest import IMGSZ, setup_with_batch, tiny_overrides


def cli(capsys, *args) -> tuple[int, str]:
    """Run `yolo-kd ARGS` in-process; return (exit status, stderr)."""
    from yolo_kd.cli import main

    rc = main([str(a) for a in args])
    return rc, capsys.readouterr().err.strip()


def one_line_error(capsys, *args, match: str, log_before: bool = False) -> str:
    """Assert that `yolo-kd ARGS` exits 1 with one 'yolo-kd: error:' line (the last one, after a worker's log when
    `log_before`) matching `match`; return that line."""
    import re

    rc, err = cli(capsys, *args)
    assert rc == 1, err
    if log_before:
        assert "Traceback" not in err, err
        err = err.splitlines()[-1]
    assert len(err.splitlines()) == 1, err
    assert err.startswith("yolo-kd: error: ") and re.search(match, err), err
    return err


@pytest.fixture(scope="module")
def kd_run(workdir, tiny_data, tiny_teacher) -> Path:
    """A finished 2-epoch KD run whose teacher is a copy that tests may move; returns the run folder."""
    from yolo_kd import KDTrainer

    teacher = workdir / "teacher-copy.pt"
    shutil.copy(tiny_teacher, teacher)
    o = tiny_overrides(workdir, tiny_data, str(teacher), "errors-run", kd_warmup=0, save_period=1, epochs=2)
    KDTrainer(overrides=o).train()
    return workdir / "runs" / "errors-run"


@pytest.fixture()
def base(workdir, tiny_data, tiny_teacher):
    """CLI arguments of a valid tiny run named 'fail-<case>'; after the test, no such run folder may exist."""
    names = []

    def make(case, **kw):
        names.append(f"fail-{case}")
        o = tiny_overrides(workdir, tiny_data, tiny_teacher, f"fail-{case}", **kw)
        return [f"{k}={v}" for k, v in o.items()]

    yield make
    for n in names:
        assert not (workdir / "runs" / n).exists(), f"{n} was left behind"


# ---------------------------------------------------------------- 1. method=none, 2. no student
def test_method_none_from_the_cli_is_the_baseline():
    from yolo_kd.bench import load_settings
    from yolo_kd.cli import parse_args
    from yolo_kd.config import KDConfig

    kw = parse_args(["method=none"])
    assert kw == {"method": None}  # what Ultralytics' smart_value makes of it
    assert KDConfig.from_overrides(kw).method == "none"
    assert load_settings(**parse_args(["methods=none"]))["methods"] == ["none"]
    assert load_settings(methods="none,paper")["methods"] == ["none", "paper"]
    # Ultralytics' list syntax, as typed on the command line (smart_value leaves it a string)
    settings = load_settings(**parse_args(["methods=[none,paper,cfg/paper_no_sam.yaml]", "seeds=[3,4]"]))
    assert settings["methods"] == ["none", "paper", "cfg/paper_no_sam.yaml"]
    assert settings["seeds"] == [3, 4]


def test_method_none_trains_from_the_cli(capsys, workdir, tiny_data):
    rc, err = cli(capsys, "train", "method=none", "model=yolov8n.yaml", f"data={tiny_data}", "epochs=1", f"imgsz={IMGSZ}",
                  "batch=8", "device=cpu", "plots=False", f"project={workdir / 'runs'}", "name=cli-none", "exist_ok=True")
    assert rc == 0, err
    assert (workdir / "runs" / "cli-none" / "weights" / "best.pt").exists()


def test_no_student(capsys, base):
    args = [a for a in base("nostudent") if not a.startswith("model=")]
    one_line_error(capsys, "train", *args, match="no student given: pass student=")


# ---------------------------------------------------------------- 3. resume
def test_resume_missing_checkpoint(capsys, tmp_path):
    one_line_error(capsys, "train", "resume=True", f"model={tmp_path / 'last.pt'}", match="resume checkpoint .* not found")


def test_bare_resume_without_runs(capsys, monkeypatch, tmp_path):
    from ultralytics.utils import SETTINGS

    monkeypatch.setattr("ultralytics.utils.files.get_latest_run", lambda *a: "")
    one_line_error(capsys, "train", "resume=True", match=f"found no last.pt under {SETTINGS['runs_dir']}")


def test_resume_truncated_checkpoint(capsys, kd_run, tmp_path):
    f = tmp_path / "last.pt"
    f.write_bytes((kd_run / "weights" / "epoch0.pt").read_bytes()[:50_000])
    one_line_error(capsys, "train", "resume=True", f"model={f}", match="cannot be read .* truncated or corrupt")


def test_resume_with_moved_teacher_names_the_fix(capsys, kd_run, workdir, tmp_path):
    from yolo_kd import KDTrainer
    from yolo_kd.config import kd_defaults

    unfinished = kd_run / "weights" / "unfinished.pt"
    shutil.copy(kd_run / "weights" / "epoch0.pt", unfinished)  # epoch 1 of 2: resumable
    shutil.copy(kd_run / "weights" / "kd_epoch0.pt", kd_run / "weights" / "kd_unfinished.pt")
    moved = tmp_path / "moved-teacher.pt"
    shutil.move(workdir / "teacher-copy.pt", moved)
    try:
        one_line_error(capsys, "train", "resume=True", f"model={unfinished}", match="add teacher=<its new path> to the resume")
        t = KDTrainer(overrides=dict(resume=True, model=str(unfinished), teacher=str(moved), fr=3))
        assert t.kd_cfg.teacher == str(moved) and t.kd_cfg.fr == kd_defaults()["fr"] != 3  # ignored on resume, warned
        t._setup_train()  # resume_training: the KD modules are exactly those saved beside the checkpoint
        saved = torch.load(kd_run / "weights" / "kd_unfinished.pt", weights_only=False)["state"]
        assert saved and all(torch.equal(v, saved[k]) for k, v in t.distiller.state_dict().items())
    finally:
        shutil.move(moved, workdir / "teacher-copy.pt")


# ---------------------------------------------------------------- 4. atomic checkpoints
def _saving_trainer(workdir, tiny_data, tiny_teacher):
    t, _ = setup_with_batch(tiny_overrides(workdir, tiny_data, tiny_teacher, "atomic", save_period=1))
    t.metrics, t.fitness, t.best_fitness, t.epoch = {}, 0.0, 0.0, 0
    return t


def test_checkpoint_write_fault_keeps_the_previous_file(workdir, tiny_data, tiny_teacher, monkeypatch):
    """A full disk during any checkpoint write leaves the previous complete last.pt, best.pt and no stray files."""
    import pathlib

    t = _saving_trainer(workdir, tiny_data, tiny_teacher)
    t.save_model()
    before = {f: f.read_bytes() for f in (t.last, t.best)}
    from yolo_kd.checkpoints import kd_sidecar

    assert torch.load(kd_sidecar(t.last), weights_only=False)["state"]
    before[kd_sidecar(t.last)] = kd_sidecar(t.last).read_bytes()
    t.epoch, t.fitness = 1, 1.0  # a new best: last.pt, best.pt and epoch1.pt would all be rewritten

    def full_disk(self, data):  # writes half, then fails like ENOSPC
        with open(self, "wb") as f:
            f.write(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    real_write = pathlib.Path.write_bytes
    for fault in ("ultralytics", "publish"):
        if fault == "ultralytics":  # Ultralytics' own write_bytes into the staging folder fails
            monkeypatch.setattr(pathlib.Path, "write_bytes", full_disk)
        else:  # our atomic publish fails half-way through writing its temporary file
            monkeypatch.setattr(pathlib.Path, "write_bytes", real_write)
            monkeypatch.setattr("yolo_kd.checkpoints.os.fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.ENOSPC, "full")))
        with pytest.raises(OSError):
            t.save_model()
        for f, data in before.items():
            assert f.read_bytes() == data, (fault, f.name)
        assert not list(t.wdir.glob(".*.tmp")) and not (t.wdir / "epoch1.pt").exists()
    monkeypatch.undo()
    t.save_model()  # and a healthy write publishes the new files
    assert torch.load(t.last, weights_only=False)["epoch"] == 1 and (t.wdir / "epoch1.pt").exists()
    assert not (t.wdir / ".staging").exists()


def test_final_optimizer_strip_is_atomic(tmp_path, monkeypatch):
    import ultralytics.engine.trainer as ul_trainer

    from yolo_kd.checkpoints import atomic_strip_optimizer

    f = tmp_path / "last.pt"
    f.write_bytes(b"previous complete file")

    def failing_strip(f, s="", updates=None):
        Path(s or f).write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ul_trainer, "strip_optimizer", failing_strip)
    with atomic_strip_optimizer(), pytest.raises(OSError):
        ul_trainer.strip_optimizer(f)
    assert f.read_bytes() == b"previous complete file" and list(tmp_path.iterdir()) == [f]
    assert ul_trainer.strip_optimizer is failing_strip  # restored


# ---------------------------------------------------------------- 5. non-finite settings and terms
@pytest.mark.parametrize("kw", ["fr=inf", "sam=-inf", "kd_temp=nan", "kd_clip=1e999"])
def test_non_finite_settings_are_refused(capsys, base, kw):
    one_line_error(capsys, "train", *base("inf"), kw, match="must be a finite")


def test_kd_term_non_finite_for_an_epoch_stops_training(workdir, tiny_data, tiny_teacher):
    from ultralytics.utils.torch_utils import unwrap_model

    from yolo_kd.criterion import KDTrainingError

    t, batch = setup_with_batch(tiny_overrides(workdir, tiny_data, tiny_teacher, "nan-epoch", kd_warmup=0,
                                               kd="paper_all"))
    student = unwrap_model(t.model)
    t.distiller.fam.forward = lambda *a, **k: torch.tensor(float("inf"))
    for _ in range(2):
        student.loss(batch, student(batch["img"]))
    with pytest.raises(KDTrainingError, match=r"fam_loss was non-finite in 2/2 batches .* \(fam=0\)"):
        t.run_callbacks("on_train_epoch_end")
    student.criterion.backbone_tap.attach()  # as the next epoch's first batch does (the epoch's end took it off)
    student.loss(batch, student(batch["img"]))  # one more bad batch ...
    student.criterion.batches_this_epoch = 20  # ... in an epoch of 20 (5% <= kd_max_skip): a warning, training goes on
    t.check_kd_health()
    assert student.criterion.skipped_before == 3 and student.criterion.bad_counts is None  # 2 (stopped) + 1


# ---------------------------------------------------------------- 6. malformed presets
@pytest.mark.parametrize("text, match", [("a: [1,\n", "is not valid YAML .* line 2"), ("- a: 1\n- b: 2\n", "not a YAML list"),
                                         ("hello\n", "not a YAML str")])
def test_malformed_presets(capsys, base, tmp_path, text, match):
    from yolo_kd.config import KDConfig, KDConfigError

    f = tmp_path / "preset.yaml"
    f.write_text(text)
    with pytest.raises(KDConfigError, match=match):
        KDConfig.from_overrides({"kd": str(f)})
    one_line_error(capsys, "train", *base("preset"), f"kd={f}", match=match)


# ---------------------------------------------------------------- 7. common mistakes
def test_val_and_export_without_model(capsys, tiny_data):
    one_line_error(capsys, "val", f"data={tiny_data}", match="'yolo-kd val' needs model=")
    one_line_error(capsys, "export", "format=onnx", match="'yolo-kd export' needs model=")


@pytest.mark.parametrize("kw, match", [("epochs=0", "'epochs' must be >= 1"), ("batch=abc", "'batch=abc' is of invalid type"),
                                       ("device=0", "Invalid CUDA 'device=0'")])
def test_bad_ultralytics_values(capsys, base, kw, match):
    from yolo_kd import KDTrainer
    from yolo_kd.cli import parse_args

    if kw == "device=0" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    one_line_error(capsys, "train", *base("ul"), kw, match=match)
    with pytest.raises(ValueError, match=match):
        KDTrainer(overrides=parse_args([*base("ul"), kw]))


def test_corrupt_student(capsys, base, tmp_path):
    f = tmp_path / "student.pt"
    f.write_bytes(b"\x80\x04 not a checkpoint")
    one_line_error(capsys, "train", *base("student"), f"model={f}", match="student .* could not be loaded")


def test_project_that_is_a_file(capsys, base, tmp_path):
    f = tmp_path / "file"
    f.write_text("")
    one_line_error(capsys, "train", *base("project"), f"project={f}", match="is a file, not a folder")
    one_line_error(capsys, "train", *base("project"), f"project={f / 'sub'}", match="is a file, not a folder")


def test_export_bad_format_and_missing_model(capsys, tiny_teacher):
    one_line_error(capsys, "export", f"model={tiny_teacher}", "format=bogus", match="format=bogus is not .* valid: torchscript, onnx")
    one_line_error(capsys, "export", "model=missing.pt", match="model 'missing.pt' not found")


def test_unexpected_errors_are_one_line_and_debug_shows_the_traceback(capsys, monkeypatch):
    import yolo_kd.cli

    def boom(mode, kw):
        raise AttributeError("internal")

    monkeypatch.setattr(yolo_kd.cli, "run_mode", boom)
    one_line_error(capsys, "train", match=r"internal \(AttributeError; rerun with --debug")
    with pytest.raises(AttributeError):
        yolo_kd.cli.main(["train", "--debug"])
    rc, err = cli(capsys, "bogus-mode")
    assert rc == 2 and "valid modes: train, tune, check, val" in err


# ---------------------------------------------------------------- 8. attention
def _attention_dirs():
    from ultralytics.utils import SETTINGS

    return set((Path(SETTINGS["runs_dir"]) / "detect").glob("attention*"))


@pytest.mark.parametrize("args, match", [((), "needs model=, teacher=, data="), (("lvl=1",), "'lvl' is not .*Did you mean 'level'"),
                                         (("level=9",), "'level=9' is out of range.*0..2"), (("n=0",), "'n=0' must be")])
def test_attention_bad_input(capsys, kd_run, tiny_teacher, tiny_data, args, match):
    full = [f"model={kd_run / 'weights' / 'best.pt'}", f"teacher={tiny_teacher}", f"data={tiny_data}"] if args else []
    before = _attention_dirs()
    one_line_error(capsys, "attention", *full, *args, match=match)
    assert _attention_dirs() == before  # no empty output folder


def test_attention_rounds_imgsz_and_writes_a_run_folder(capsys, kd_run, tiny_teacher, tiny_data):
    from ultralytics.utils import SETTINGS

    from yolo_kd.cli import main

    before = _attention_dirs()
    rc = main(["attention", f"model={kd_run / 'weights' / 'best.pt'}", f"teacher={tiny_teacher}", f"data={tiny_data}",
               "imgsz=50", "n=1"])  # 50 is not a multiple of the stride 32: rounded up to 64, as training does
    out, err = capsys.readouterr()
    assert rc == 0, err
    (new,) = _attention_dirs() - before
    try:
        assert new.parent == Path(SETTINGS["runs_dir"]) / "detect" and (new / "attention_0.png").exists()
        assert f"attention maps saved to {new}" in out
    finally:
        shutil.rmtree(new)


# ---------------------------------------------------------------- 9. multi-output export
def test_segmentation_export_compares_every_output(tmp_path):
    from ultralytics.nn.tasks import SegmentationModel

    from yolo_kd.export import export

    m = SegmentationModel("yolov8n-seg.yaml", nc=2, verbose=False)
    m.names, m.args = {0: "a", 1: "b"}, {"imgsz": 64, "task": "segment"}
    f = tmp_path / "seg.pt"
    torch.save({"model": m.half(), "train_args": {"task": "segment"}}, f)
    onnx_file, diff = export(f, format="onnx", imgsz=64)
    assert Path(onnx_file).exists() and diff < 1e-3


def test_flatten_outputs_keeps_every_tensor():
    from yolo_kd.export import flatten_outputs

    out = (torch.zeros(1, 38, 5), (torch.zeros(1, 2), {"p": torch.zeros(1, 32, 4, 4)}))
    assert [a.shape for a in flatten_outputs(out)] == [(1, 38, 5), (1, 2), (1, 32, 4, 4)]


# ---------------------------------------------------------------- 10. bench
def test_bench_validates_methods_before_anything_runs(capsys, tmp_path):
    one_line_error(capsys, "bench", "methods=none,bogus", f"project={tmp_path / 'b'}", match="'bogus' is neither a method")
    one_line_error(capsys, "bench", "epochs=0", f"project={tmp_path / 'b'}", match="'epochs=0' must be a positive integer")
    one_line_error(capsys, "bench", "epochz=3", f"project={tmp_path / 'b'}", match="Did you mean 'epochs'")
    assert not (tmp_path / "b").exists()


def test_failed_bench_worker_is_one_line(capsys, workdir, tiny_teacher, tmp_path):
    from yolo_kd.datasets.shapes import generate

    other = generate(root=str(workdir / "data-renamed"), train=4, val=2, imgsz=64)
    text = other.read_text()
    for name in ("circle", "square", "triangle", "cross", "ring", "star"):
        text = text.replace(f": {name}", f": {name}_x")  # no class name shared with the teacher
    other.write_text(text)
    err = one_line_error(capsys, "bench", f"data={other}", f"teacher={tiny_teacher}", "methods=paper", "seeds=1",
                         "epochs=1", f"imgsz={IMGSZ}", f"project={tmp_path}", match="bench: paper seed 0 failed: TeacherError", log_before=True)
    assert "share no class with the data's" in err


# ---------------------------------------------------------------- 11. smaller messages
def test_close_key_suggestions():
    from yolo_kd.config import KDConfigError, split_overrides

    for key, hint in (("fr_weigth", "'fr'"), ("fr_mak", "'fr_mask'"), ("tckd_weight", "'tckd'")):
        with pytest.raises(KDConfigError, match=f"Did you mean .*{hint}"):
            split_overrides({key: 1})


def test_classification_teacher_yaml(capsys, base):
    one_line_error(capsys, "train", *base("cls"), "teacher=yolov8n-cls.yaml", match="is a classification model")


def test_class_mismatch_error_is_summarised(capsys, base, tiny_teacher, tmp_path):
    from ultralytics.nn.tasks import load_checkpoint

    from yolo_kd.config import summarize_names

    names = {i: f"class{i}" for i in range(80)}
    assert summarize_names(names) == "80: class0, class1, class2, class3, class4, class5, ... (74 more)"
    model = load_checkpoint(tiny_teacher)[0]
    model.names = names
    f = tmp_path / "many-names.pt"
    torch.save({"model": model}, f)
    err = one_line_error(capsys, "train", *base("names"), f"teacher={f}", match=r"teacher classes \(80: class0, .*74 more\)")
    assert len(err) < 400


def test_teacher_identical_to_student_warns(kd_run, tiny_teacher):
    from ultralytics.nn.tasks import load_checkpoint

    from yolo_kd.teacher import load_teacher, warn_if_same_model

    teacher = load_teacher(tiny_teacher)
    student = load_checkpoint(tiny_teacher)[0]
    assert warn_if_same_model(teacher, student, tiny_teacher, tiny_teacher)  # same file
    copy = kd_run / "teacher-as-student.pt"
    shutil.copy(tiny_teacher, copy)
    assert warn_if_same_model(teacher, load_checkpoint(copy)[0], tiny_teacher, copy)  # same weights, other file
    assert not warn_if_same_model(teacher, load_checkpoint(kd_run / "weights" / "best.pt")[0], tiny_teacher, "s.pt")
