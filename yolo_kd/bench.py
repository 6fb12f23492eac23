"""`yolo-kd bench`: every method on the same data, seeds, epochs and augmentation; a table, a CSV and a plot.

Each (method, seed) trains in its own subprocess (clean peak-memory reading, no state leaking between runs) and
writes `bench.json` in its run directory; a finished run is never repeated, so an interrupted bench resumes. A finished
run whose recorded KD settings (kd.yaml) differ from what its method means today stops the bench with an error instead
of being reused.

    yolo-kd bench preset=cfg/bench_quick.yaml
    yolo-kd bench teacher=runs/t/weights/best.pt student=yolov8n.yaml data=d.yaml methods=none,paper,ultralytics
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import yaml

from .runs import (
    MAP,
    MAP50,
    count_params,
    epoch_time,
    is_finished,
    read_results,
    stale_kd_keys,
    stale_run_settings,
    train_student,
    train_teacher,
)

BENCH = dict(
    name="bench",
    data=None,  # a data YAML; None generates the bundled shapes data with `dataset` settings
    dataset=dict(root="datasets/shapes-bench", train=600, val=150, imgsz=128, seed=1),
    relabel=None,  # class names: students see the data labelling only these (in this order); the teacher sees all
    teacher="yolov8s.yaml",  # a .pt, or a YAML trained first with teacher_epochs
    teacher_epochs=50,
    student="yolov8n.yaml",
    methods=["none", "paper", "ultralytics", "cwd", "mgd"],
    seeds=3,
    epochs=40,
    imgsz=128,
    batch=32,
    device="cpu",
    dis=6.0,  # Ultralytics built-in distillation weight
    train_args={},  # other Ultralytics train keys for the teacher and every student, e.g. {nbs: 16}
    teacher_args={},  # Ultralytics train keys for the teacher only, over train_args, e.g. {batch: 8, nbs: 8}
    student_pretrain=None,  # fine-tuning regime: {dataset: {...}, epochs: N} trains the student once (seed 0, plain
    # Ultralytics) on that other generated dataset and starts every run from it: the offline stand-in for yolov8n.pt
    project="runs/bench",
    jobs=1,  # runs trained at once (each its own process); >1 suits a GPU sweep, and its timings are then shared-load
    timing=True,  # measure the step ratio after each KD run (a few seconds per run)
)


def _as_list(v) -> list:
    """'a,b', '[a,b]' or [a, b] -> ['a', 'b']; None (smart_value's reading of `none`) -> ['none']."""
    if v is None:
        return ["none"]
    if isinstance(v, (str, int)):
        v = str(v).strip().removeprefix("[").removesuffix("]").split(",")
    return ["none" if x is None else str(x).strip() for x in v]


def check_methods(methods: list[str]) -> None:
    """Every method must be a yolo-kd method, 'ultralytics', or a KD preset name (e.g. paper_with_dkd)."""
    from .config import KDConfigError, find_preset
    from .config import methods as registered

    for m in methods:
        if m in registered() or m == "ultralytics":
            continue
        try:
            find_preset(m)
        except KDConfigError:
            raise KDConfigError(
                f"methods: '{m}' is neither a method ({', '.join(registered())}, ultralytics) nor a KD preset in cfg/"
            ) from None


def _positive_int(cfg: dict, key: str) -> None:
    from .config import KDConfigError

    v = cfg[key]
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise KDConfigError(f"'{key}={v}' must be a positive integer")


def read_preset(preset: str) -> dict:
    """Bench keys of a preset YAML; `base: <preset>` extends another one."""
    from .config import find_preset, read_yaml_mapping

    values = read_yaml_mapping(find_preset(preset), "bench preset")
    base = values.pop("base", None)
    return {**read_preset(base), **values} if base else values


def load_settings(preset: str | None = None, **overrides) -> dict:
    """BENCH defaults < preset YAML < explicit keys."""
    from .config import KDConfigError

    cfg = dict(BENCH)
    if preset:
        cfg.update(read_preset(preset))
    unknown = sorted(set(overrides) - set(BENCH))
    if unknown:
        from .config import suggest

        raise KDConfigError(f"unknown bench keys {unknown}.{suggest(unknown[0], BENCH)} Valid: {', '.join(BENCH)}")
    cfg.update(overrides)
    if isinstance(cfg["dataset"], str):  # from the CLI: dataset="{train: 300, imgsz: 96}"
        cfg["dataset"] = {**BENCH["dataset"], **yaml.safe_load(cfg["dataset"])}
    cfg["methods"] = _as_list(cfg["methods"])
    check_methods(cfg["methods"])
    for key in ("epochs", "teacher_epochs", "imgsz", "jobs"):
        _positive_int(cfg, key)
    if not isinstance(cfg["batch"], (int, float)) or isinstance(cfg["batch"], bool):
        raise KDConfigError(f"'batch={cfg['batch']}' must be a number")
    if not isinstance(cfg["dis"], (int, float)) or not math.isfinite(cfg["dis"]) or cfg["dis"] < 0:
        raise KDConfigError(f"'dis={cfg['dis']}' must be a finite, non-negative number")
    from .config import split_overrides

    for key in ("train_args", "teacher_args"):
        if isinstance(cfg[key], str):  # from the CLI: train_args="{nbs: 16}"
            cfg[key] = yaml.safe_load(cfg[key])
        if not isinstance(cfg[key] or {}, dict):
            raise KDConfigError(f"{key}={cfg[key]!r} must be a mapping of Ultralytics train keys")
        _, kd = split_overrides(cfg[key] or {})  # validates the Ultralytics keys too
        if kd:
            raise KDConfigError(f"{key} holds KD keys {sorted(kd)}: put them in a KD preset and list it in methods")
    pre = cfg["student_pretrain"]
    if isinstance(pre, str):
        pre = cfg["student_pretrain"] = yaml.safe_load(pre)
    if pre is not None and not (isinstance(pre, dict) and isinstance(pre.get("dataset"), dict)
                                and isinstance(pre.get("epochs"), int) and pre["epochs"] > 0):
        raise KDConfigError(f"student_pretrain={pre!r} must be {{dataset: {{<generator keys>}}, epochs: <int>}}")
    for key in ("data", "teacher", "student"):
        v = cfg[key]
        if v and str(v).endswith((".pt", ".yaml", ".yml")) and not Path(str(v)).exists() and not Path(str(v)).name.startswith("yolo"):
            raise KDConfigError(f"{key}={v} not found")
    seeds = cfg["seeds"]
    if isinstance(seeds, int) and seeds < 1:
        raise KDConfigError(f"seeds={seeds}: give a count (seeds=3 runs seeds 0, 1, 2) or a list such as seeds=0,2 "
                            "(one seed: seeds=[0])")
    cfg["seeds"] = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in _as_list(seeds)]
    return cfg


def repo_relative(value):
    """A path inside the working directory as a relative path (reports must not carry machine paths)."""
    if isinstance(value, (str, Path)) and os.path.isabs(str(value)):
        try:
            return str(Path(value).resolve().relative_to(Path.cwd().resolve()))
        except ValueError:
            return str(value)
    return value


def peak_rss_mib() -> float | None:
    """Peak resident memory of this process (VmHWM, Linux) in MiB. Not ru_maxrss: Linux carries that across
    fork/exec, so a worker would report its parent's peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def run_one(spec: dict) -> dict:
    """Train one (method, seed) and measure it; runs inside the worker subprocess."""
    import torch

    from .timing import step_overhead

    run_dir = Path(spec["run_dir"])
    t = train_student(spec["method"], run_dir, spec["teacher"], **spec["train"])
    timing = step_overhead(t) if spec["method"] != "none" and spec.get("timing", True) else {}
    if t.device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(t.device) / 2**20
    else:
        peak = peak_rss_mib()
    result = {
        "method": spec["method"],
        "seed": spec["train"]["seed"],
        "mAP50": float(t.metrics.get(MAP50, float("nan"))),
        "mAP50-95": float(t.metrics.get(MAP, float("nan"))),
        "params": count_params(t.best),
        "s_per_epoch": epoch_time(run_dir),
        "peak_mem_mib": peak,
        "peak_mem_kind": "cuda_max_allocated" if t.device.type == "cuda" else "cpu_peak_rss",
        **{f"time_{k}": v for k, v in timing.items()},
    }
    (run_dir / "bench.json").write_text(json.dumps(result, indent=1))
    return result


def _mean_std(xs: list[float]) -> tuple[float, float]:
    m = sum(xs) / len(xs)
    return m, (math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else 0.0)


def paired_differences(results: list[dict], method: str, reference: str) -> list[float]:
    """mAP50-95 of `method` minus that of `reference` on each seed both ran (in the order of `results`)."""
    ref = {r["seed"]: r["mAP50-95"] for r in results if r["method"] == reference}
    return [r["mAP50-95"] - ref[r["seed"]] for r in results if r["method"] == method and r["seed"] in ref]


def summarize(results: list[dict], methods: list[str]) -> list[dict]:
    """One row per method: mean/std over seeds and the paired gain over 'none' (same seeds)."""
    by = {m: [r for r in results if r["method"] == m] for m in methods}
    rows = []
    for m in methods:
        rs = by[m]
        if not rs:
            continue
        row = {"method": m, "seeds": len(rs)}
        for k in ("mAP50", "mAP50-95"):
            row[f"{k}_mean"], row[f"{k}_std"] = _mean_std([r[k] for r in rs])
        gains = paired_differences(results, m, "none")
        row["gain_mean"], row["gain_std"] = _mean_std(gains) if gains else (float("nan"), float("nan"))
        row["params"] = rs[0]["params"]
        row["s_per_epoch"] = _mean_std([r["s_per_epoch"] for r in rs])[0]
        ratios = [r["time_ratio"] for r in rs if "time_ratio" in r]
        row["step_ratio"] = _mean_std(ratios)[0] if ratios else float("nan")
        peaks = [r["peak_mem_mib"] for r in rs if r.get("peak_mem_mib") is not None]
        row["peak_mem_mib"] = max(peaks) if peaks else float("nan")
        rows.append(row)
    return rows


def write_report(out: Path, rows: list[dict], results: list[dict], cfg: dict, run_dirs: dict) -> None:
    """results.csv, results.md and results.png in `out`."""
    import csv

    with open(out / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    with open(out / "runs.csv", "w", newline="") as f:
        keys = sorted({k for r in results for k in r})
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(results)
    lines = [
        f"# yolo-kd bench `{cfg['name']}`",
        "",
        f"teacher `{repo_relative(cfg['teacher'])}` -> student `{cfg['student']}`, data `{repo_relative(cfg['data'])}`, "
        f"{cfg['epochs']} epochs, "
        f"imgsz {cfg['imgsz']}, batch {cfg['batch']}, device {cfg['device']}, seeds {cfg['seeds']}.",
        *([f"The teacher trained on `{repo_relative(cfg['teacher_data'])}` (all its classes); the students' data "
           f"labels only {_as_list(cfg['relabel'])}, in that order (other objects stay in the images, unlabeled).", ""]
          if cfg.get("teacher_data") else []),
        *([f"Every student starts from `{repo_relative(cfg['student_weights'])}`: `{cfg['student']}` trained "
           f"{cfg['student_pretrain']['epochs']} epochs on other generated data "
           f"({_describe(cfg['student_pretrain']['dataset'])}), the offline stand-in for a pretrained checkpoint.", ""]
          if cfg.get("student_pretrain") else []),
        "Gain = paired difference to `none` on the same seed (mAP50-95 points), mean ± std over seeds. "
        "Step ratio = KD step / (student step + teacher forward), same process. Peak memory: "
        f"{results[0]['peak_mem_kind']}.",
        "",
        "| method | mAP50 | mAP50-95 | gain vs none | params | s/epoch | step ratio | peak MiB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        no_gain = r["method"] == "none" or math.isnan(r["gain_mean"])  # `none` itself, or not run with it
        gain = "" if no_gain else f"{100 * r['gain_mean']:+.1f} ± {100 * r['gain_std']:.1f}"
        ratio = "" if math.isnan(r["step_ratio"]) else f"{r['step_ratio']:.2f}"
        lines.append(
            f"| {r['method']} | {r['mAP50_mean']:.3f} ± {r['mAP50_std']:.3f} | {r['mAP50-95_mean']:.3f} ± "
            f"{r['mAP50-95_std']:.3f} | {gain} | {r['params']:,} | {r['s_per_epoch']:.1f} | {ratio} | "
            f"{r['peak_mem_mib']:.0f} |"
        )
    lines += ["", *per_seed_table(results, [r["method"] for r in rows])]
    lines += against_builtin(results, [r["method"] for r in rows])
    (out / "results.md").write_text("\n".join(lines) + "\n")
    plot(out / "results.png", rows, results, run_dirs)


def per_seed_table(results: list[dict], methods: list[str]) -> list[str]:
    """Markdown lines: mAP50-95 of every (method, seed), and each method's paired gain over `none` per seed."""
    seeds = sorted({r["seed"] for r in results})
    score = {(r["method"], r["seed"]): r["mAP50-95"] for r in results}
    lines = ["mAP50-95 per seed (gain over `none` on the same seed, points):", "",
             "| method | " + " | ".join(f"seed {s}" for s in seeds) + " |", "|---|" + "---|" * len(seeds)]
    for m in methods:
        cells = []
        for s in seeds:
            v, base = score.get((m, s)), score.get(("none", s))
            gain = f" ({100 * (v - base):+.1f})" if m != "none" and v is not None and base is not None else ""
            cells.append("" if v is None else f"{v:.3f}{gain}")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return lines


def against_builtin(results: list[dict], methods: list[str], builtin: str = "ultralytics") -> list[str]:
    """Markdown lines: each KD method's paired difference to Ultralytics' built-in distillation on the seeds both ran
    (mAP50-95 points, mean ± std, and on how many seeds it is ahead); none when the built-in was not run."""
    lines = []
    for m in methods:
        if m in ("none", builtin):
            continue
        diffs = paired_differences(results, m, builtin)
        if diffs:
            mean, std = _mean_std(diffs)
            ahead = sum(d > 0 for d in diffs)
            lines.append(f"- `{m}` − built-in: {100 * mean:+.1f} ± {100 * std:.1f} points, ahead on {ahead} of "
                         f"{len(diffs)} seeds")
    if lines:
        lines = ["", f"Paired difference to Ultralytics' built-in distillation (`{builtin}`), same seeds:", "", *lines]
    return lines


def _describe(dataset: dict) -> str:
    """Generator settings as 'train 600, imgsz 64, ...' (the root folder left out)."""
    return ", ".join(f"{k} {v}" for k, v in dataset.items() if k != "root")


def plot(file: Path, rows: list[dict], results: list[dict], run_dirs: dict) -> None:
    """Bar chart of mAP50-95 (mean ± std) per method, and validation mAP50-95 per epoch for every run (or, when runs
    validated only at the end, each seed's final mAP50-95 across methods)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.5))
    names = [r["method"] for r in rows]
    a.bar(names, [r["mAP50-95_mean"] for r in rows], yerr=[r["mAP50-95_std"] for r in rows], capsize=4,
          color=["#888" if n == "none" else "#1f77b4" if n.startswith("paper") else "#ff7f0e" for n in names])
    a.set_ylabel("mAP50-95 (mean ± std over seeds)")
    a.set_title("final mAP50-95")
    a.tick_params(axis="x", rotation=30)
    curves = {k: rs for k, d in run_dirs.items() if len(rs := [r for r in read_results(d) if r[MAP] > 0]) > 1}
    if curves:  # validated every epoch: the learning curves
        colors = {m: plt.cm.tab10(i % 10) for i, m in enumerate(names)}
        for (m, seed), rs in curves.items():
            b.plot([r["epoch"] for r in rs], [r[MAP] for r in rs], color=colors.get(m, "k"), alpha=0.8,
                   label=m if seed == min(s for mm, s in curves if mm == m) else None)
        b.set_xlabel("epoch")
        b.set_ylabel("val mAP50-95")
        b.set_title("validation mAP50-95 per epoch (every seed)")
    else:  # validated at the end only: each seed's score across methods (the pairing behind the gains)
        score = {(r["method"], r["seed"]): r["mAP50-95"] for r in results}
        for seed in sorted({s for _, s in score}):
            b.plot(names, [score.get((m, seed), float("nan")) for m in names], marker="o", label=f"seed {seed}")
        b.set_ylabel("final mAP50-95")
        b.set_title("each seed across methods")
        b.tick_params(axis="x", rotation=30)
    b.legend()
    fig.tight_layout()
    fig.savefig(file, dpi=110)
    plt.close(fig)


class BenchError(RuntimeError):
    """A bench worker (one method, one seed) failed; the message names it and carries the worker's last error line."""

    user_facing = True


def train_once(model: str, root: Path, epochs: int, **kw) -> Path:
    """Train `model` with plain Ultralytics (seed 0) once per distinct setting and return its best.pt. Presets that
    share the data and settings share the run, in root/<model>-<hash of the settings>."""
    settings = {k: repo_relative(v) for k, v in {"model": model, "epochs": epochs, **kw}.items()}  # a moved checkout
    key = hashlib.sha1(json.dumps(settings, sort_keys=True, default=str).encode())  # keeps its runs
    return train_teacher(model, root / f"{Path(model).stem}-{key.hexdigest()[:8]}", epochs=epochs, seed=0, **kw)


def run_worker(spec: dict) -> None:
    """Train one (method, seed) in a subprocess, streaming its output; on failure raise BenchError naming the method,
    the seed and the worker's own last error line."""
    from collections import deque

    p = subprocess.Popen([sys.executable, "-m", "yolo_kd.bench", json.dumps(spec)], env=os.environ.copy(),
                         stderr=subprocess.PIPE, text=True, errors="replace")
    tail = deque(maxlen=50)
    for line in p.stderr:
        sys.stderr.write(line)
        if line.strip():
            tail.append(line.strip())
    if p.wait() != 0:
        errors = [ln for ln in tail if ln.startswith("yolo-kd: error:")]
        last = (errors or list(tail) or [f"exit status {p.returncode}"])[-1]
        raise BenchError(f"bench: {spec['method']} seed {spec['train']['seed']} failed: "
                         f"{last.removeprefix('yolo-kd: error: ')} (run folder {spec['run_dir']})")


def run_all(specs: list[dict], jobs: int = 1) -> None:
    """Train every spec, `jobs` at a time, in order; after a failure no new run starts, and the first failure is
    raised once the running ones end."""
    from concurrent.futures import ThreadPoolExecutor

    def start(spec):
        print(f"bench: training {spec['method']} seed {spec['train']['seed']} -> {spec['run_dir']}", flush=True)
        run_worker(spec)

    if jobs <= 1:
        for spec in specs:
            start(spec)
        return
    with ThreadPoolExecutor(jobs) as pool:
        futures = [pool.submit(start, spec) for spec in specs]
        try:
            for future in futures:
                future.result()
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise


def run_bench(preset: str | None = None, **overrides) -> Path:
    """Run (or resume) the bench and write the report; return the output directory."""
    from .datasets.shapes import ensure

    cfg = load_settings(preset, **overrides)
    out = Path(cfg["project"]).resolve() / cfg["name"]
    out.mkdir(parents=True, exist_ok=True)
    if not cfg["data"]:
        cfg["data"] = str(ensure(**cfg["dataset"]))
    common = dict(data=cfg["data"], imgsz=cfg["imgsz"], batch=cfg["batch"], device=cfg["device"], plots=False,
                  **(cfg["train_args"] or {}))
    teacher = cfg["teacher"]
    if str(teacher).endswith((".yaml", ".yml")):
        if is_finished(out / "teacher", cfg["teacher_epochs"]):  # a bench started before teachers were shared
            teacher = str(out / "teacher" / "weights" / "best.pt")
        else:
            teacher = str(train_once(teacher, out.parent / "teachers", cfg["teacher_epochs"],
                                     **{**common, **(cfg["teacher_args"] or {})}))
    student = cfg["student"]
    if cfg["student_pretrain"]:
        pre = cfg["student_pretrain"]
        student = str(train_once(student, out.parent / "pretrained", pre["epochs"],
                                 **{**common, "data": str(ensure(**pre["dataset"]))}))
    if cfg["relabel"]:  # the teacher knows every class; the students' data labels a reordered subset
        from .datasets.shapes import relabel

        cfg["teacher_data"] = cfg["data"]
        cfg["data"] = common["data"] = str(relabel(cfg["data"], out / "data", _as_list(cfg["relabel"])))
    cfg["student_weights"] = student
    settings = {k: repo_relative(v) for k, v in {**cfg, "teacher_weights": teacher}.items()}
    (out / "settings.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
    run_dirs, todo = {}, []
    for seed in cfg["seeds"]:
        for method in cfg["methods"]:
            run_dir = out / f"{Path(method).stem}-s{seed}"  # a preset path runs under its file name
            run_dirs[(method, seed)] = run_dir
            train = dict(model=student, epochs=cfg["epochs"], seed=seed, **common)
            if method == "ultralytics":
                train["dis"] = cfg["dis"]
            finished = (run_dir / "bench.json").exists() and is_finished(run_dir, cfg["epochs"])
            stale = []
            if finished:  # reused only while it was trained as this bench would train it now
                stale = stale_kd_keys(run_dir, method) + stale_run_settings(
                    run_dir, train, None if method == "none" else teacher)
            if stale:
                raise ValueError(
                    f"{run_dir} was trained with other settings than this bench's '{method}' ({'; '.join(stale[:3])}"
                    f"{'; ...' if len(stale) > 3 else ''}): use another name=, or move or delete it to retrain it, e.g. "
                    f"rename it to {Path(method).stem}_old-s{seed} (and set \"method\" in its bench.json) to keep it"
                )
            if not finished:
                todo.append({"method": method, "run_dir": str(run_dir), "teacher": teacher, "train": train,
                             "timing": cfg["timing"]})
    run_all(todo, cfg["jobs"])
    results = [json.loads((d / "bench.json").read_text()) for d in run_dirs.values()]
    rows = summarize(results, cfg["methods"])
    write_report(out, rows, results, cfg, run_dirs)
    print((out / "results.md").read_text())
    return out


def _worker_main(spec: str) -> int:
    """Worker entry: one (method, seed) run; errors end with one 'yolo-kd: error:' line that the bench reports."""
    from .errors import debug_requested, is_user_error, one_line

    try:
        run_one(json.loads(spec))
    except Exception as e:
        if debug_requested([]) or not is_user_error(e):
            import traceback

            traceback.print_exc()
        print(f"yolo-kd: error: {type(e).__name__}: {one_line(e)}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":  # worker: one (method, seed) run
    sys.exit(_worker_main(sys.argv[1]))
