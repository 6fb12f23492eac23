"""`yolo-kd tune`: search the KD keys (and any Ultralytics train keys) on the user's own data.

Local search reuses Ultralytics' `Tuner` as it is: its mutation, bounds, fitness, `tune_results.ndjson`, plots and
resume. Two seams are used, both covered by contract tests: each trial is one `MultiTrainer` run, here with
`KDTrainer` as its trainer, so every trial is a normal KD training from the same initial student; and the KD keys,
which Ultralytics' `get_cfg` would reject, are set on the tuner's args after it is built. `use_ray=True` runs
Ultralytics' `run_ray_tune` with a model whose `train()` trains with `KDTrainer`.

A finished tune writes, into its run folder: `best_kd.yaml` (a preset: `yolo-kd train kd=<it>`), `summary.md`
(best trial vs the defaults vs `method=none`, trained once with the same settings) and Ultralytics' plots.
"""

from __future__ import annotations

import json
import math
from contextlib import contextmanager
from pathlib import Path

import yaml

from .config import (
    ALIASES,
    TRAINER_DEFAULTS,
    KDConfig,
    KDConfigError,
    kd_defaults,
    split_overrides,
    starts_from_weights,
    suggest,
)
from .losses.registry import REGISTRY

# KD keys of the trainer that a default space searches, with their bounds (fractions of the run, epochs)
TRAINER_SPACE = {"kd_warmup": (0.0, 0.5), "kd_budget": (0.25, 2.0)}
INT_KEYS = frozenset(k for k, v in TRAINER_DEFAULTS.items() if isinstance(v, int) and not isinstance(v, bool))
TUNE_KEYS = ("space", "iterations", "use_ray", "grace_period", "gpu_per_trial", "search_alg")
FITNESS = "fitness"


class TuneError(KDConfigError):
    """Invalid tune settings (raised before anything runs)."""


def default_space(method: str, epochs: int) -> dict:
    """Search bounds {key: (min, max)} for `method`: each term weight in [0, 3x default], each temperature in
    [default/4, 4x default], the warm-up share, the KD budget and the KD-free final epochs (up to a quarter)."""
    space = {}
    for cls in REGISTRY.get(method, []):
        if not any(float(cls.defaults.get(k, 1.0)) > 0 for k in cls.columns.values()):
            continue  # a loss that is off by default (ld) stays off, temperature included
        for key in cls.columns.values():
            default = float(cls.defaults.get(key, 1.0))
            if default > 0:
                space[key] = (0.0, 3.0 * default)
        for key in cls.positive:
            default = float(cls.defaults[key])
            space[key] = (round(default / 4, 5), 4.0 * default)
    return {**space, **TRAINER_SPACE, "kd_off_last": (0, max(epochs // 4, 0))}


def check_space(space) -> dict:
    """Validate a user `space=` ({key: [min, max]} or {key: [min, max, gain]}) -> {key: tuple}; TuneError if a key
    is unknown or not numeric, or bounds are not (min <= max)."""
    from ultralytics.cfg import DEFAULT_CFG_DICT

    if isinstance(space, (str, Path)):
        path = Path(space)
        if not path.is_file():
            raise TuneError(f"space={space}: no such file (give a YAML file or a dict of key: [min, max])")
        from .config import read_yaml_mapping

        space = read_yaml_mapping(path, "tune space")
    if not isinstance(space, dict) or not space:
        raise TuneError(f"space= must be a non-empty mapping of key: [min, max], got {space!r}")
    kd = kd_defaults()
    known = {**DEFAULT_CFG_DICT, **kd}
    out = {}
    for key, bounds in space.items():
        key = ALIASES.get(key, key)
        if key not in known:
            raise TuneError(f"space: '{key}' is not a yolo-kd or Ultralytics key.{suggest(key, known)}")
        default = known[key]
        if isinstance(default, bool) or not isinstance(default, (int, float)) and default is not None:
            raise TuneError(f"space: '{key}' is not numeric ({key}={default!r}); only numeric keys can be searched")
        ok = isinstance(bounds, (list, tuple)) and len(bounds) in (2, 3)
        ok = ok and all(isinstance(b, (int, float)) and not isinstance(b, bool) and math.isfinite(b) for b in bounds)
        if not ok or bounds[0] > bounds[1]:
            raise TuneError(f"space: '{key}: {bounds}' must be [min, max] (or [min, max, gain]) with min <= max")
        if key in kd and bounds[0] < 0:
            raise TuneError(f"space: '{key}' cannot be negative ({bounds})")
        out[key] = tuple(bounds)
    return out


def _split_tune_args(kwargs: dict) -> tuple[dict, dict, dict]:
    """kwargs -> (tune options, Ultralytics train args, KD args), with one-line errors for bad values."""
    opts = {k: kwargs.pop(k) for k in TUNE_KEYS if k in kwargs}
    ul, kd = split_overrides(kwargs)
    iterations = opts.get("iterations", 10)
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise TuneError(f"'iterations={iterations}' must be a whole number >= 1")
    for key in ("model", "data"):
        if not ul.get(key):
            raise TuneError(f"'yolo-kd tune' needs {'student' if key == 'model' else key}=... "
                            f"(e.g. yolo-kd tune teacher=t.pt student=yolov8n.yaml data=d.yaml)")
    return opts, ul, kd


def _kd_multitrainer():
    """Ultralytics' MultiTrainer with KDTrainer as the trainer of every trial (same initial weights each time), and
    one progress line per trial."""
    from ultralytics.engine.trainer import MultiTrainer
    from ultralytics.utils import LOGGER, colorstr

    from .trainer import KDTrainer

    class KDMultiTrainer(MultiTrainer):
        def __init__(self, trainer, args, model, _callbacks=None):
            super().__init__(KDTrainer, args, model, _callbacks)

        def train(self):
            done = len(read_trials(Path(self.args["project"])))  # trials already in tune_results.ndjson
            metrics = super().train()
            for run, m in metrics.items():
                shown = "failed" if not m else (
                    f"fitness {m.get(FITNESS, float('nan')):.4f}, mAP50-95 {m.get('metrics/mAP50-95(B)', float('nan')):.4f}")
                label = "method=none baseline" if self.args.get("method") == "none" else f"trial {done + 1}"
                LOGGER.info(f"{colorstr('KD tune:')} {label}: {shown} ({self.save_dir / run})")
            return metrics

    return KDMultiTrainer


@contextmanager
def _trials_use_kd_trainer():
    """While the tuner runs, `ultralytics.engine.trainer.MultiTrainer` (which `Tuner.__call__` imports at call time)
    is the KD variant."""
    import ultralytics.engine.trainer as engine

    original = engine.MultiTrainer
    engine.MultiTrainer = _kd_multitrainer()
    try:
        yield
    finally:
        engine.MultiTrainer = original


def _kd_tuner_class():
    from ultralytics.engine.tuner import Tuner

    class KDTuner(Tuner):
        """Ultralytics' Tuner whose args also hold the KD keys, and whose trials train with KDTrainer."""

        def __init__(self, args: dict, kd: dict, space: dict):
            self.kd_cfg = KDConfig.from_overrides(kd, finetuning=starts_from_weights(args))  # trials get every key
            super().__init__({**args, "space": space, "mode": "train"})
            for k, v in self.kd_cfg.as_dict().items():
                setattr(self.args, k, v)
            self.args.project = str(self.tune_dir)  # trials live in the tune folder (multitrain, multitrain2, ...)

        def _constrain(self, hyp: dict) -> dict:
            hyp = super()._constrain(hyp)
            return {k: int(round(v)) if k in INT_KEYS else v for k, v in hyp.items()}

        def __call__(self, iterations: int = 10, cleanup: bool = True):
            with _trials_use_kd_trainer():
                return super().__call__(iterations=iterations, cleanup=cleanup)

    return KDTuner


def tune(**kwargs) -> Path:
    """Search KD settings; return the tune folder (holding best_kd.yaml, summary.md, tune_results.ndjson, plots).

    Example:
        >>> import yolo_kd
        >>> yolo_kd.tune(teacher="t.pt", student="yolov8n.yaml", data="d.yaml", epochs=30, iterations=20)
    """
    opts, ul, kd = _split_tune_args(dict(kwargs))
    method = KDConfig.from_overrides(kd).method
    if method == "none":
        raise TuneError("method=none has no KD keys to tune; choose a KD method (e.g. method=paper)")
    space = check_space(opts["space"]) if opts.get("space") else default_space(method, int(ul.get("epochs") or 100))
    if {"lr0", "momentum"} & set(space):
        ul.setdefault("optimizer", "AdamW")  # as Model.tune: 'auto' would ignore lr0 and momentum
    ul.setdefault("plots", False)
    if opts.get("use_ray"):
        from .tuning_ray import tune_with_ray

        return tune_with_ray(ul, kd, space, method, opts)
    tuner = _kd_tuner_class()(ul, kd, space)
    tuner(iterations=opts.get("iterations", 10))
    baseline = train_baseline(tuner)
    return write_outcome(tuner.tune_dir, method, list(space), baseline)


def train_baseline(tuner) -> dict:
    """Train `method=none` once, with the tuner's settings and the same initial weights as every trial; reused
    when already done. Returns its final metrics (with 'fitness')."""
    from ultralytics.utils import LOGGER, colorstr

    record = tuner.tune_dir / "baseline.json"
    if record.exists():
        return json.loads(record.read_text())
    LOGGER.info(f"{colorstr('KD tune:')} training the method=none baseline once, with the same settings")
    args = dict(vars(tuner.args), method="none", teacher=None, project=str(tuner.tune_dir / "baseline"))
    args["data"] = [args["data"]]
    metrics = _kd_multitrainer()(None, args, tuner.model).train()
    result = next(iter(metrics.values())) or {}
    record.write_text(json.dumps({k: float(v) for k, v in result.items()}))
    return result


def read_trials(tune_dir: Path) -> list[dict]:
    """Rows of tune_results.ndjson: {'iteration', 'fitness', 'hyperparameters', 'metrics'}."""
    f = Path(tune_dir) / "tune_results.ndjson"
    rows = []
    for line in f.read_text().splitlines() if f.exists() else []:
        r = json.loads(line)
        metrics = next(iter(r.get("datasets", {}).values()), {}) or {}
        rows.append({"iteration": r["iteration"], "fitness": r["fitness"], "hyperparameters": r["hyperparameters"],
                     "metrics": metrics})
    return rows


def write_outcome(tune_dir: Path, method: str, keys: list, baseline: dict, trials: list[dict] | None = None,
                  first_is_defaults: bool = True) -> Path:
    """Write best_kd.yaml and summary.md from the trials; print the summary. Returns the tune folder."""
    tune_dir = Path(tune_dir)
    trials = trials if trials is not None else read_trials(tune_dir)
    if not trials:
        raise TuneError(f"no finished trial in {tune_dir}")
    best = max(trials, key=lambda r: r["fitness"])
    first = trials[0] if first_is_defaults else None  # Ultralytics' Tuner trains the current values first
    gain = best["fitness"] - baseline.get(FITNESS, float("nan"))
    header = (f"# yolo-kd tune: best of {len(trials)} trials (iteration {best['iteration']}), fitness {best['fitness']:.4f}"
              f" vs {baseline.get(FITNESS, float('nan')):.4f} for method=none ({gain:+.4f}).\n"
              f"# Use it with: yolo-kd train kd={tune_dir / 'best_kd.yaml'} teacher=... student=... data=...\n")
    values = {"method": method, **{k: _plain(best["hyperparameters"][k]) for k in keys if k in best["hyperparameters"]}}
    (tune_dir / "best_kd.yaml").write_text(header + yaml.safe_dump(values, sort_keys=False))
    table = summary_table(best, first, baseline)
    (tune_dir / "summary.md").write_text(f"# KD tune summary ({len(trials)} trials, method={method})\n\n{table}\n")
    print(f"\n{table}\nBest settings: {tune_dir / 'best_kd.yaml'}")
    return tune_dir


def summary_table(best: dict, defaults: dict | None, baseline: dict) -> str:
    """Markdown table: best trial, the defaults (iteration 1) and method=none (rows without data are left out)."""
    m50, m = "metrics/mAP50(B)", "metrics/mAP50-95(B)"
    base_fit = baseline.get(FITNESS, float("nan"))
    rows = [("best trial (iteration %d)" % best["iteration"], best["fitness"], best["metrics"])]
    if defaults is not None:
        rows.append(("defaults (iteration %d)" % defaults["iteration"], defaults["fitness"], defaults["metrics"]))
    if baseline:
        rows.append(("method=none", base_fit, baseline))
    lines = ["| run | fitness | mAP50 | mAP50-95 | fitness vs none |", "|---|---:|---:|---:|---:|"]
    for name, fit, met in rows:
        lines.append(f"| {name} | {fit:.4f} | {met.get(m50, float('nan')):.4f} | {met.get(m, float('nan')):.4f} | "
                     f"{fit - base_fit:+.4f} |")
    return "\n".join(lines)


def _plain(v):
    """numpy/float values as plain YAML numbers (ints stay ints)."""
    v = float(v)
    return int(v) if v.is_integer() else round(v, 6)
