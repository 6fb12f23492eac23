"""`yolo-kd bench` end to end on the micro preset: 1 seed, 1 epoch, 64 px, incl. Ultralytics' built-in KD."""

import csv
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_bench_micro_writes_all_outputs(workdir):
    out = workdir / "bench"
    cmd = [sys.executable, "-m", "yolo_kd.cli", "bench", "preset=cfg/bench_micro.yaml", f"project={out}",
           f"dataset={{root: {workdir / 'bench-data'}, train: 16, val: 8, imgsz: 64, seed: 0}}"]
    subprocess.run(cmd, check=True)
    d = out / "micro"
    for f in ("results.md", "results.csv", "results.png"):
        assert (d / f).stat().st_size > 0, f
    rows = {r["method"]: r for r in csv.DictReader(open(d / "results.csv"))}
    assert set(rows) == {"none", "paper", "ultralytics"}
    assert float(rows["paper"]["step_ratio"]) > 0 and float(rows["ultralytics"]["step_ratio"]) > 0
    assert all(0 <= float(r["mAP50-95_mean"]) <= 1 and float(r["peak_mem_mib"]) > 0 for r in rows.values())
    # resumable: a second call trains nothing and rewrites the same table
    before = (d / "none-s0" / "bench.json").stat().st_mtime
    subprocess.run(cmd, check=True)
    assert (d / "none-s0" / "bench.json").stat().st_mtime == before


def test_peak_memory_is_this_process_not_its_parent():
    """A worker's peak RSS must not inherit the parent's (ru_maxrss does across fork/exec on Linux)."""
    code = "from yolo_kd.bench import peak_rss_mib; print(peak_rss_mib())"
    big = bytearray(600 * 2**20)  # the parent holds 600 MiB
    big[::4096] = b"\x01" * len(big[::4096])
    child = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert 0 < child < 500
    del big


def test_bench_settings_refuse_bad_keys():
    import pytest

    from yolo_kd.bench import load_settings
    from yolo_kd.config import KDConfigError

    assert load_settings("cfg/bench_quick.yaml", seeds="0,2")["seeds"] == [0, 2]
    assert load_settings("cfg/bench_quick.yaml")["epochs"] == 15  # `base: bench_cpu` extended
    with pytest.raises(KDConfigError, match="seeds=0"):
        load_settings("cfg/bench_micro.yaml", seeds=0)
    with pytest.raises(KDConfigError, match="sedes"):
        load_settings("cfg/bench_micro.yaml", sedes=1)
    assert load_settings("cfg/bench_micro.yaml", train_args="{nbs: 16}")["train_args"] == {"nbs": 16}
    with pytest.raises(KDConfigError, match="KD keys"):
        load_settings("cfg/bench_micro.yaml", train_args={"fr": 2.0})
    with pytest.raises(KDConfigError, match="nbz"):
        load_settings("cfg/bench_micro.yaml", train_args={"nbz": 16})
    classmap = load_settings("cfg/bench_classmap.yaml")
    assert classmap["relabel"] == ["star", "circle", "cross"] and classmap["dataset"]["classes"] == 8
    cpu, ft = load_settings("cfg/bench_cpu.yaml"), load_settings("cfg/bench_cpu_ft.yaml")  # ft extends cpu
    assert ft["student_pretrain"]["epochs"] > 0 and ft["teacher_args"] == {"batch": 8, "nbs": 8, "warmup_epochs": 1}
    assert ft["train_args"]["warmup_epochs"] == 1 and cpu["train_args"]["warmup_epochs"] == 3
    assert ft["dataset"] == cpu["dataset"]
    tune = load_settings("cfg/bench_tune64_w3_strong.yaml")  # the from-scratch tuning set: the bench's recipe, other data
    assert tune["train_args"] == cpu["train_args"] and tune["epochs"] == cpu["epochs"] and tune["teacher_epochs"] == 150
    assert tune["dataset"]["seed"] != cpu["dataset"]["seed"] and tune["dataset"]["root"] != cpu["dataset"]["root"]
    sized = load_settings("cfg/bench_tune64_b.yaml")  # the tuning set with the bench's size: only the data differ
    assert {k: v for k, v in sized["dataset"].items() if k not in ("root", "seed")} == \
        {k: v for k, v in cpu["dataset"].items() if k not in ("root", "seed")}
    assert sized["dataset"]["seed"] not in (cpu["dataset"]["seed"], tune["dataset"]["seed"])
    assert (sized["train_args"], sized["teacher_args"], sized["epochs"]) == (cpu["train_args"], cpu["teacher_args"], 20)
    with pytest.raises(KDConfigError, match="student_pretrain"):
        load_settings("cfg/bench_micro.yaml", student_pretrain="{epochs: 2}")
    with pytest.raises(KDConfigError, match="teacher_args holds KD keys"):
        load_settings("cfg/bench_micro.yaml", teacher_args={"sam": 1.0})


def test_shared_runs_are_keyed_by_their_settings(tmp_path, monkeypatch):
    """Presets with the same teacher settings share one teacher run; any other setting trains another."""
    from yolo_kd import bench

    calls = []
    monkeypatch.setattr(bench, "train_teacher", lambda model, run_dir, **kw: calls.append(run_dir) or run_dir)
    a = bench.train_once("yolov8s.yaml", tmp_path, 25, data="d.yaml", batch=8)
    b = bench.train_once("yolov8s.yaml", tmp_path, 25, batch=8, data="d.yaml")
    c = bench.train_once("yolov8s.yaml", tmp_path, 25, data="d.yaml", batch=16)
    assert a == b != c and a.parent == tmp_path and a.name.startswith("yolov8s-")


@pytest.mark.slow
def test_bench_finetune_regime_starts_every_student_from_the_pretrained_one(workdir):
    import yaml

    out = workdir / "bench-ft"
    cmd = [sys.executable, "-m", "yolo_kd.cli", "bench", "preset=cfg/bench_micro.yaml", f"project={out}",
           "methods=none,paper", "name=micro-ft",
           f"dataset={{root: {workdir / 'bench-data'}, train: 16, val: 8, imgsz: 64, seed: 0}}",
           f"student_pretrain={{dataset: {{root: {workdir / 'pre-data'}, train: 16, val: 8, imgsz: 64, seed: 5, "
           "classes: 8}, epochs: 1}"]
    subprocess.run(cmd, check=True)
    settings = yaml.safe_load((out / "micro-ft" / "settings.yaml").read_text())
    pretrained = settings["student_weights"]
    assert "pretrained" in pretrained and pretrained.endswith("best.pt")
    for method in ("none", "paper"):
        args = yaml.safe_load((out / "micro-ft" / f"{method}-s0" / "args.yaml").read_text())
        assert str(args["model"]).endswith(pretrained)  # the settings hold it repo-relative when it can be
    assert "Every student starts from" in (out / "micro-ft" / "results.md").read_text()
    assert len(list((out / "teachers").iterdir())) == 1


def test_per_seed_table_pairs_each_gain_with_its_own_seed():
    from yolo_kd.bench import per_seed_table

    results = [{"method": "none", "seed": 0, "mAP50-95": 0.20}, {"method": "none", "seed": 1, "mAP50-95": 0.30},
               {"method": "paper", "seed": 0, "mAP50-95": 0.25}, {"method": "paper", "seed": 1, "mAP50-95": 0.29}]
    lines = per_seed_table(results, ["none", "paper"])
    assert lines[-2] == "| none | 0.200 | 0.300 |"
    assert lines[-1] == "| paper | 0.250 (+5.0) | 0.290 (-1.0) |"


def test_report_states_each_method_against_the_builtin_on_shared_seeds(tmp_path):
    """The product's goal is stated against the built-in: paired differences, mean ± std and seeds ahead."""
    from yolo_kd import bench

    scores = {"none": (0.50, 0.40, 0.45), "paper": (0.62, 0.60, 0.61), "ultralytics": (0.60, 0.63, 0.58)}
    results = [{"method": m, "seed": s, "mAP50": 0.8, "mAP50-95": v[s], "params": 1, "s_per_epoch": 1.0,
                "peak_mem_mib": 1.0, "peak_mem_kind": "cpu_peak_rss"} for m, v in scores.items() for s in range(3)]
    results.append({**results[-1], "method": "cwd", "seed": 0, "mAP50-95": 0.55})  # one seed only
    cfg = {"name": "t", "teacher": "t.pt", "student": "yolov8n.yaml", "data": "d.yaml", "epochs": 1, "imgsz": 32,
           "batch": 2, "device": "cpu", "seeds": 3}
    methods = ["none", "paper", "ultralytics", "cwd"]
    bench.write_report(tmp_path, bench.summarize(results, methods), results, cfg, {})
    text = (tmp_path / "results.md").read_text()
    assert "- `paper` − built-in: +0.7 ± 3.2 points, ahead on 2 of 3 seeds" in text  # +2, -3, +3
    assert "- `cwd` − built-in: -5.0 ± 0.0 points, ahead on 0 of 1 seeds" in text
    assert "`none` − built-in" not in text and "`ultralytics` − built-in" not in text
    assert bench.against_builtin(results, ["none", "paper"], builtin="mgd") == []


def test_a_report_without_none_leaves_the_gain_blank(tmp_path):
    """Variants screened without `none` (its runs already reported) get no gain, not '+nan ± nan'."""
    from yolo_kd import bench

    results = [{"method": "paper", "seed": s, "mAP50": 0.7, "mAP50-95": 0.5 + s / 100, "params": 1, "s_per_epoch": 1.0,
                "peak_mem_mib": 1.0, "peak_mem_kind": "cpu_peak_rss"} for s in (0, 1)]
    cfg = {"name": "t", "teacher": "t.pt", "student": "yolov8n.yaml", "data": "d.yaml", "epochs": 1, "imgsz": 32,
           "batch": 2, "device": "cpu", "seeds": 2}
    bench.write_report(tmp_path, bench.summarize(results, ["paper"]), results, cfg, {})
    row = next(line for line in (tmp_path / "results.md").read_text().splitlines() if line.startswith("| paper | 0.700"))
    assert row.split(" | ")[3] == "" and "nan" not in row
    assert "| paper | 0.500 | 0.510 |" in (tmp_path / "results.md").read_text()


@pytest.mark.parametrize("validated_every_epoch", [True, False])
def test_plot_draws_curves_or_paired_seeds(tmp_path, monkeypatch, validated_every_epoch):
    """Runs validated every epoch get learning curves; runs validated at the end only get each seed across methods."""
    import matplotlib.axes

    from yolo_kd import bench
    from yolo_kd.runs import MAP

    run_dirs, results = {}, []
    for m, base in (("none", 0.2), ("paper", 0.3)):
        for seed in (0, 1):
            d = tmp_path / f"{m}-s{seed}"
            d.mkdir()
            scores = [base / 2, base] if validated_every_epoch else [0.0, base]
            (d / "results.csv").write_text("epoch,time," + MAP + "\n" + "".join(
                f"{e + 1},{e + 1.0},{v}\n" for e, v in enumerate(scores)))
            run_dirs[(m, seed)] = d
            results.append({"method": m, "seed": seed, "mAP50": 2 * base, "mAP50-95": base + seed / 100, "params": 1,
                            "s_per_epoch": 1.0, "peak_mem_mib": 1.0})
    rows = bench.summarize(results, ["none", "paper"])
    lines = []
    real_plot = matplotlib.axes.Axes.plot
    monkeypatch.setattr(matplotlib.axes.Axes, "plot", lambda ax, x, y, **kw: lines.append((list(x), list(y), kw))
                        or real_plot(ax, x, y, **kw))
    bench.plot(tmp_path / "r.png", rows, results, run_dirs)
    assert (tmp_path / "r.png").stat().st_size > 0
    if validated_every_epoch:  # one curve per run, over epochs
        assert len(lines) == 4 and lines[0][0] == [1.0, 2.0]
    else:  # one line per seed, over methods
        assert [x for x, _, _ in lines] == [["none", "paper"]] * 2
        assert [y for _, y, _ in lines] == [pytest.approx([0.2, 0.3]), pytest.approx([0.21, 0.31])]


@pytest.mark.parametrize("jobs", [1, 3])
def test_bench_jobs_run_every_spec_and_stop_after_a_failure(monkeypatch, jobs):
    import threading
    import time

    from yolo_kd import bench

    started, lock = [], threading.Lock()

    def worker(spec):
        with lock:
            started.append(spec["method"])
        if spec["method"] == "bad":
            raise bench.BenchError("bench: bad seed 0 failed")
        time.sleep(0.2 if spec["method"] == "x" else 0)  # runs in flight when the failure is seen

    monkeypatch.setattr(bench, "run_worker", worker)
    specs = [{"method": m, "run_dir": m, "train": {"seed": 0}} for m in ("a", "b", "c", "d")]
    bench.run_all(specs, jobs)
    assert sorted(started) == ["a", "b", "c", "d"]
    started.clear()
    failing = [{"method": m, "run_dir": m, "train": {"seed": 0}} for m in ["bad"] + ["x"] * 8]
    with pytest.raises(bench.BenchError, match="bad seed 0"):
        bench.run_all(failing, jobs)
    # the pool's first `jobs` runs start together, in any order under load; queued runs are cancelled after a failure
    assert "bad" in started[:jobs] and len(started) <= jobs + 1 < 9


def test_a_relative_run_folder_is_where_the_run_lands(tmp_path, monkeypatch, tiny_data):
    """train_teacher/train_student take run_dir relative to the working directory (Ultralytics alone would put a
    relative project under its runs_dir), so the finished-run check and read_results find what was trained."""
    from yolo_kd.runs import is_finished, train_teacher

    monkeypatch.chdir(tmp_path)
    kw = dict(data=tiny_data, epochs=1, imgsz=64, batch=8, device="cpu", plots=False, workers=0)
    best = train_teacher("yolov8n.yaml", "rel/teacher", **kw)
    assert Path(best) == tmp_path / "rel" / "teacher" / "weights" / "best.pt" and Path(best).exists()
    assert is_finished("rel/teacher", 1)
    stamp = Path(best).stat().st_mtime_ns
    assert train_teacher("yolov8n.yaml", "rel/teacher", **kw) == best and Path(best).stat().st_mtime_ns == stamp


def test_a_finished_teacher_is_reused_only_with_the_same_settings_and_data(tmp_path):
    """The demo's teacher folder is fixed: a teacher trained on data generated with other settings at the same path,
    or with other keys, must not be reused; a moved copy of the same data must."""
    import json
    import shutil

    from yolo_kd.datasets.shapes import generate
    from yolo_kd.runs import changed_settings, data_fingerprint, teacher_settings

    data = generate(root=str(tmp_path / "d"), train=4, val=2, imgsz=64, seed=0)
    kw = dict(data=str(data), epochs=1, imgsz=64)
    run = tmp_path / "teacher"
    run.mkdir()
    assert changed_settings(run, teacher_settings("yolov8n.yaml", kw)) == "no record of its settings"
    (run / "teacher.json").write_text(json.dumps(teacher_settings("yolov8n.yaml", kw)))
    assert changed_settings(run, teacher_settings("yolov8n.yaml", kw)) == ""
    assert changed_settings(run, teacher_settings("yolov8n.yaml", {**kw, "imgsz": 96})) == "imgsz: 64 -> 96"
    shutil.copytree(tmp_path / "d", tmp_path / "moved")
    assert data_fingerprint(tmp_path / "moved" / "data.yaml") == data_fingerprint(data)
    old = data_fingerprint(data)
    generate(root=str(tmp_path / "d"), train=5, val=2, imgsz=64, seed=0)  # same path, other generator settings
    assert changed_settings(run, teacher_settings("yolov8n.yaml", kw)) == f"data: {old} -> {data_fingerprint(data)}"
    assert data_fingerprint("coco8.yaml") == "coco8.yaml"


def test_bench_refuses_to_reuse_a_run_trained_with_other_kd_settings(tmp_path, tiny_data):
    """A finished run is reused by folder name only while its recorded kd.yaml still matches what the method means
    today; otherwise the bench stops before training anything and names the differing key."""
    import yaml

    from yolo_kd.bench import run_bench
    from yolo_kd.runs import kd_settings_for, stale_kd_keys

    run = tmp_path / "micro" / "paper-s0"
    (run / "weights").mkdir(parents=True)
    (run / "weights" / "best.pt").write_bytes(b"")
    (run / "results.csv").write_text("epoch,time\n1,1.0\n")
    (run / "bench.json").write_text('{"method": "paper", "seed": 0}')
    recorded = kd_settings_for("paper")
    (run / "kd.yaml").write_text(yaml.safe_dump(recorded))
    assert stale_kd_keys(run, "paper") == []
    assert stale_kd_keys(run, "none") == [] and kd_settings_for("ultralytics") is None
    assert stale_kd_keys(run, "paper_with_fam") == [f"fam: {recorded['fam']} -> 6.0"]
    other = "constant" if recorded["kd_schedule"] != "constant" else "cosine"
    (run / "kd.yaml").write_text(yaml.safe_dump({**recorded, "kd_schedule": other}))
    assert stale_kd_keys(run, "paper") == [f"kd_schedule: {other} -> {recorded['kd_schedule']}"]
    teacher = tmp_path / "teacher.pt"
    teacher.write_bytes(b"")
    with pytest.raises(ValueError, match=f"kd_schedule: {other} -> .*rename it to paper_old-s0"):
        run_bench("cfg/bench_micro.yaml", project=str(tmp_path), data=tiny_data, teacher=str(teacher),
                  methods="paper")
    assert not (tmp_path / "micro" / "none-s0").exists()  # nothing trained
    # a fine-tuning run (its args.yaml names a .pt student) is compared with the fine-tuning defaults
    (run / "kd.yaml").write_text(yaml.safe_dump(recorded))
    (run / "args.yaml").write_text(yaml.safe_dump({"model": "pretrained/best.pt"}))
    assert stale_kd_keys(run, "paper") == ["kd_warmup: 0.0 -> 0.1", "kd_grad_clip: joint -> student",
                                           "feat_norm: none -> channel", "th: 7.0 -> 0.0", "tn: 7.0 -> 0.0", "tckd: 0.0 -> 1.0",
                                           "nckd: 0.0 -> 2.0", "bgkd: 0.0 -> 0.5"]
    (run / "kd.yaml").write_text(yaml.safe_dump(kd_settings_for("paper", finetuning=True)))
    assert stale_kd_keys(run, "paper") == []


def test_bench_refuses_to_reuse_a_run_trained_on_other_data_or_with_another_teacher(tmp_path, tiny_data):
    """A finished run is reused only while its args.yaml and teacher match what the bench would train now. Data,
    student weights and teacher count by content (a copy or a moved project matches); the device does not count."""
    import shutil

    import yaml

    from yolo_kd.bench import run_bench
    from yolo_kd.runs import stale_run_settings

    teacher, copy, other = tmp_path / "t.pt", tmp_path / "copy.pt", tmp_path / "other.pt"
    teacher.write_bytes(b"weights")
    copy.write_bytes(b"weights")
    other.write_bytes(b"other weights")
    run = tmp_path / "micro" / "paper-s0"
    (run / "weights").mkdir(parents=True)
    train = dict(model="yolov8n.yaml", epochs=1, seed=0, data=tiny_data, imgsz=64, device="cpu", val=False)
    (run / "args.yaml").write_text(yaml.safe_dump({**train, "device": "0"}))
    (run / "kd.yaml").write_text(yaml.safe_dump({"teacher": str(teacher)}))
    assert stale_run_settings(run, train, str(copy)) == []
    moved = tmp_path / "moved"
    shutil.copytree(Path(tiny_data).parent, moved)
    assert stale_run_settings(run, {**train, "data": str(moved / "data.yaml")}, str(teacher)) == []
    assert stale_run_settings(run, {**train, "seed": 1, "val": True}, str(other)) == [
        f"teacher: {teacher} -> {other}", "seed: 0 -> 1", "val: False -> True"]
    assert stale_run_settings(tmp_path, train, str(other)) == []  # no args.yaml: nothing to compare

    # the bench stops before training anything when a finished run of the same name holds other data
    done = tmp_path / "micro" / "none-s0"
    (done / "weights").mkdir(parents=True)
    (done / "weights" / "best.pt").write_bytes(b"")
    (done / "results.csv").write_text("epoch,time\n1,1.0\n")
    (done / "bench.json").write_text('{"method": "none", "seed": 0}')
    from yolo_kd.datasets.shapes import generate

    elsewhere = Path(tiny_data).parent.parent / "other-data"
    other_data = str(generate(root=str(elsewhere), train=4, val=2, imgsz=64, seed=3))
    (done / "args.yaml").write_text(yaml.safe_dump({"model": "yolov8n.yaml", "epochs": 1, "seed": 0, "data": other_data}))
    with pytest.raises(ValueError, match=r"none-s0 was trained with other settings .*\(data: .*other-data.* -> .*use another name="):
        run_bench("cfg/bench_micro.yaml", project=str(tmp_path), data=tiny_data, teacher=str(teacher), methods="none")
