"""Running one training (teacher, baseline, distilled or Ultralytics' built-in KD) and reading its results."""

from __future__ import annotations

import csv
import functools
import hashlib
import json
from pathlib import Path

import yaml

MAP50, MAP = "metrics/mAP50(B)", "metrics/mAP50-95(B)"


def read_results(run_dir: str | Path) -> list[dict]:
    """Rows of a run's results.csv as dicts of floats."""
    f = Path(run_dir) / "results.csv"
    if not f.exists():
        return []
    with open(f) as fh:
        return [{k.strip(): float(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def epoch_time(run_dir: str | Path) -> float:
    """Mean seconds per epoch (training + validation) from results.csv's cumulative time column."""
    rows = read_results(run_dir)
    return rows[-1]["time"] / rows[-1]["epoch"] if rows else float("nan")


def is_finished(run_dir: str | Path, epochs: int) -> bool:
    """True when the run wrote all its epochs and best.pt."""
    rows = read_results(run_dir)
    return bool(rows) and int(rows[-1]["epoch"]) >= epochs and (Path(run_dir) / "weights" / "best.pt").exists()


def kd_overrides(method: str) -> dict:
    """The KDTrainer keys that select a bench `method`: a registered method by name (`none` included), anything
    else, `paper` too, as a preset (cfg/paper.yaml, or an ablation such as paper_with_dkd)."""
    from .config import find_preset, methods

    if method in methods() and method != "paper":
        return dict(method=method)
    return dict(kd=str(find_preset(method)))


def kd_settings_for(method: str, finetuning: bool = False) -> dict | None:
    """The KD settings (as a run's kd.yaml records them) that `train_student(method, ...)` would use today for a
    student from scratch or, with `finetuning`, from trained weights; None for 'none' and 'ultralytics', whose results
    do not depend on yolo-kd's KD keys."""
    from .config import KDConfig

    if method in ("none", "ultralytics"):
        return None
    return KDConfig.from_overrides(kd_overrides(method), finetuning=finetuning).as_dict()


def stale_kd_keys(run_dir: str | Path, method: str) -> list[str]:
    """KD keys whose value in `run_dir`/kd.yaml differs from what `method` resolves to today, as 'key: recorded ->
    now' (a key that the run did not record counts as differing). Empty when they agree or nothing is recorded."""
    from .config import starts_from_weights

    args = Path(run_dir) / "args.yaml"
    finetuning = args.exists() and starts_from_weights(yaml.safe_load(args.read_text()) or {})
    now, f = kd_settings_for(method, finetuning), Path(run_dir) / "kd.yaml"
    if now is None or not f.exists():
        return []
    recorded = yaml.safe_load(f.read_text()) or {}
    return [f"{k}: {recorded.get(k, '(not recorded)')} -> {v}" for k, v in now.items()
            if k not in ("teacher", "kd") and (k not in recorded or recorded[k] != v)]


def data_fingerprint(data: str | Path) -> str:
    """A short hash of what a data YAML describes, independent of where the dataset lies: the YAML without its `path`
    key, plus the generator settings of a generated dataset (`generator.yaml` beside it), so data regenerated with
    other settings at the same path gets another fingerprint and a moved copy keeps its own. A name that is not a
    file (e.g. 'coco8.yaml', which Ultralytics resolves) is its own fingerprint."""
    f = Path(data)
    if not f.is_file():
        return str(data)
    text = yaml.safe_dump({k: v for k, v in yaml.safe_load(f.read_text()).items() if k != "path"})
    stamp = f.parent / "generator.yaml"
    if stamp.exists():
        text += yaml.safe_dump({k: v for k, v in yaml.safe_load(stamp.read_text()).items() if k != "root"})
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def teacher_settings(model: str, kw: dict) -> dict:
    """What a trained teacher depends on: its model, its training keys, and its data by fingerprint."""
    out = {k: str(v) for k, v in sorted(kw.items())}
    out.update(model=str(model), data=data_fingerprint(kw["data"]) if kw.get("data") else "")
    return out


def changed_settings(run_dir: str | Path, settings: dict) -> str:
    """'key: saved -> wanted' for each setting that differs from the run's `teacher.json` ('' when none does; 'no
    record of its settings' for a run without one)."""
    f = Path(run_dir) / "teacher.json"
    if not f.exists():
        return "no record of its settings"
    saved = json.loads(f.read_text())
    keys = sorted(set(saved) | set(settings))
    return ", ".join(f"{k}: {saved.get(k)} -> {settings.get(k)}" for k in keys if saved.get(k) != settings.get(k))


def _same_file(recorded, now, fingerprint) -> bool:
    """Whether two path settings name the same content: compared by `fingerprint` when both are files, by name when
    neither is (e.g. 'yolov8n.yaml'); a recorded file that is gone (a moved project) cannot be told apart, so it
    counts as the same."""
    old, new = Path(str(recorded)), Path(str(now))
    if old.is_file() and new.is_file():
        return fingerprint(old) == fingerprint(new)
    if new.is_file() and not old.exists():
        return True
    return str(recorded) == str(now)


@functools.lru_cache(maxsize=64)
def _digest(path: str, size: int, mtime_ns: int) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha1").hexdigest()


def _file_digest(path: Path) -> str:
    """SHA-1 of a file's bytes, read once per (path, size, modification time): a bench start compares the same teacher
    checkpoint with every finished run."""
    st = path.stat()
    return _digest(str(path.resolve()), st.st_size, st.st_mtime_ns)


PATH_KEYS = {"data": data_fingerprint, "model": _file_digest}  # compared by content, not by where they lie


def stale_run_settings(run_dir: str | Path, train: dict, teacher: str | None = None) -> list[str]:
    """Training settings recorded by a finished bench run (its args.yaml; its teacher in kd.yaml, or `distill_model`
    for the built-in) that differ from `train` and `teacher`, the ones a bench would use now, as 'key: recorded ->
    now'. Data, student weights and teacher are compared by content, so a copy or a moved project still matches;
    `device` is not compared. Empty when nothing differs or the run has no args.yaml."""
    run_dir = Path(run_dir)
    f = run_dir / "args.yaml"
    if not f.exists():
        return []
    args = yaml.safe_load(f.read_text()) or {}
    out = []  # the teacher first: the bench's message names only the first differences
    kd = run_dir / "kd.yaml"
    recorded_teacher = args.get("distill_model") or (
        (yaml.safe_load(kd.read_text()) or {}).get("teacher") if kd.exists() else None)
    if teacher is not None and recorded_teacher is not None and not _same_file(recorded_teacher, teacher, _file_digest):
        out.append(f"teacher: {recorded_teacher} -> {teacher}")
    for key, now in train.items():
        recorded = args.get(key)
        if key == "device" or (key in PATH_KEYS and recorded is not None and _same_file(recorded, now, PATH_KEYS[key])):
            continue
        if recorded != now:
            out.append(f"{key}: {recorded} -> {now}")
    return out


def count_params(weights: str | Path) -> int:
    """Parameters of the model stored in a checkpoint."""
    from ultralytics.nn.tasks import load_checkpoint

    model, _ = load_checkpoint(weights)
    return sum(p.numel() for p in model.parameters())


def train_teacher(model: str, run_dir: str | Path, **kw) -> Path:
    """Train a teacher from a model YAML with plain Ultralytics, or reuse a finished one in `run_dir` trained with the
    same model, keys and data (`teacher.json`); return best.pt."""
    from ultralytics.models.yolo.detect import DetectionTrainer

    from .checkpoints import atomic_write
    from .trainer import use_all_cpu_cores

    run_dir = Path(run_dir).resolve()  # Ultralytics would put a relative project under its runs_dir
    settings = teacher_settings(model, kw)
    if is_finished(run_dir, kw.get("epochs", 100)):
        changed = changed_settings(run_dir, settings)
        if not changed:
            return run_dir / "weights" / "best.pt"
        print(f"yolo-kd: retraining the teacher in {run_dir}: {changed}")
    (run_dir / "teacher.json").unlink(missing_ok=True)  # a run killed midway must not look reusable
    t = DetectionTrainer(overrides=dict(model=model, project=str(run_dir.parent), name=run_dir.name, exist_ok=True, **kw))
    if t.device.type == "cpu":
        t.add_callback("on_train_start", lambda tr: use_all_cpu_cores())
    t.train()
    atomic_write(run_dir / "teacher.json", json.dumps(settings, indent=1).encode())  # a kill never leaves half a record
    return t.best


def train_student(method: str, run_dir: str | Path, teacher: str | None, **kw):
    """Train one student: method 'ultralytics' uses Ultralytics' own trainer with `distill_model=teacher`; every
    other method (including 'none' and preset names such as 'paper_with_dkd') uses KDTrainer. Returns the trainer."""
    from ultralytics.models.yolo.detect import DetectionTrainer

    from .trainer import KDTrainer, use_all_cpu_cores

    run_dir = Path(run_dir).resolve()  # Ultralytics would put a relative project under its runs_dir
    common = dict(project=str(run_dir.parent), name=run_dir.name, exist_ok=True, **kw)
    if method == "ultralytics":
        dis = common.pop("dis", 6.0)
        t = DetectionTrainer(overrides=dict(distill_model=teacher, dis=dis, **common))
        if t.device.type == "cpu":
            t.add_callback("on_train_start", lambda tr: use_all_cpu_cores())
    else:
        t = KDTrainer(overrides=dict(**kd_overrides(method), teacher=None if method == "none" else teacher, **common))
    t.train()
    return t
