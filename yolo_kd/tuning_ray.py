"""`yolo-kd tune use_ray=True`: the same KD search through Ultralytics' `run_ray_tune` (Ray Tune, optional extra
`pip install yolo-kd[ray]`). Trials are spread over the GPUs of a Ray cluster or the cores of one machine; each
trial is a `KDTrainer` run. The search algorithm defaults to Ray's random search, which needs nothing beyond Ray
(`search_alg=optuna` etc. work when their package is installed)."""

from __future__ import annotations

from pathlib import Path

from .tuning import FITNESS, INT_KEYS, TuneError, write_outcome

INSTALL_HINT = "Ray is not installed: pip install 'yolo-kd[ray]' (or pip install 'ray[tune]'), or drop use_ray=True"


def require_ray() -> None:
    """TuneError with the install command when Ray Tune cannot be imported."""
    try:
        import ray  # noqa: F401
        from ray import tune  # noqa: F401
    except ImportError:
        raise TuneError(INSTALL_HINT) from None


def ray_space(space: dict) -> dict:
    """(min, max[, gain]) bounds -> Ray Tune domains (uniform; randint for integer keys, upper bound included)."""
    from ray import tune
    from ultralytics.cfg import CFG_INT_KEYS

    return {k: tune.randint(int(b[0]), int(b[1]) + 1) if k in INT_KEYS | CFG_INT_KEYS else tune.uniform(b[0], b[1])
            for k, b in space.items()}


def _kd_yolo_class():
    from ultralytics import YOLO

    from .trainer import KDTrainer

    class KDYOLO(YOLO):
        """A YOLO model whose `train()` distils with `KDTrainer`, using the KD keys it was given (a trial's sampled
        KD keys override them). Picklable, so Ray can ship it to its workers."""

        def __init__(self, model: str, kd: dict):
            super().__init__(model)
            self.kd = dict(kd)

        def train(self, trainer=None, **kwargs):
            return super().train(trainer=KDTrainer, **{**self.kd, **kwargs})

    return KDYOLO


def tune_with_ray(ul: dict, kd: dict, space: dict, method: str, opts: dict) -> Path:
    """Run the search with Ray Tune; write best_kd.yaml and summary.md into the Ray run folder."""
    require_ray()
    from ultralytics.utils.tuner import run_ray_tune

    model = _kd_yolo_class()(ul.pop("model"), kd)
    name = ul.setdefault("name", "tune_ray")
    grid = run_ray_tune(model, space=ray_space(space), grace_period=int(opts.get("grace_period", 10)),
                        gpu_per_trial=opts.get("gpu_per_trial"), iterations=opts.get("iterations", 10),
                        search_alg=opts.get("search_alg", "random"), **ul)
    trials = []
    for i, result in enumerate(grid):
        if result.error or not result.metrics:
            continue
        m = result.metrics
        fitness = m.get(FITNESS)
        if fitness is None:  # Ray reports Ultralytics' per-epoch metrics; Ultralytics 8.4's fitness is mAP50-95
            fitness = m.get("metrics/mAP50-95(B)", 0.0)
        trials.append({"iteration": i + 1, "fitness": float(fitness), "metrics": m,
                       "hyperparameters": {k: result.config[k] for k in space if k in result.config}})
    if not trials:
        raise TuneError(f"no Ray trial finished; see the Ray logs under {grid.experiment_path}")
    tune_dir = Path(grid.experiment_path)
    return write_outcome(tune_dir, method, list(space), {}, trials, first_is_defaults=False)
