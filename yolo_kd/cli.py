"""`yolo-kd` command line, Ultralytics style: `yolo-kd MODE key=value ...`."""

from __future__ import annotations

import sys

HELP = """
yolo-kd: knowledge distillation for Ultralytics YOLO detectors

Usage: yolo-kd MODE key=value ...

  yolo-kd train teacher=yolov8l.pt student=yolov8n.yaml data=coco8.yaml epochs=100 imgsz=640 device=0
  yolo-kd train teacher=t.pt student=yolov8n.yaml data=d.yaml kd=cfg/paper.yaml fr=2.0   # preset + override
  yolo-kd train resume=True model=runs/detect/train/weights/last.pt
  yolo-kd check teacher=yolov8l.pt student=yolov8n.yaml data=d.yaml imgsz=640   # the plan, without training
  yolo-kd tune teacher=t.pt student=yolov8n.yaml data=d.yaml epochs=30 iterations=20   # search KD weights -> best_kd.yaml
  yolo-kd tune ... use_ray=True      # the same search with Ray Tune (pip install 'yolo-kd[ray]')
  yolo-kd val model=runs/detect/train/weights/best.pt data=d.yaml
  yolo-kd export model=runs/detect/train/weights/best.pt format=onnx imgsz=640   # checks ONNX Runtime vs PyTorch
  yolo-kd attention model=best.pt teacher=t.pt data=d.yaml    # teacher/GT/student attention maps as PNG
  yolo-kd demo                      # offline end-to-end demo on generated data (teacher, baseline, distilled)
  yolo-kd bench preset=cfg/bench_quick.yaml   # methods x seeds table, incl. Ultralytics' built-in distillation
  yolo-kd help

Errors print one line; add --debug (or set YOLO_KD_DEBUG=1) for the full traceback.

Trainer KD keys: yolo_kd/cfg/default.yaml; each loss declares its own keys (listed below with their defaults).
Any Ultralytics train key (epochs, batch, imgsz, device, ...) works.
"""


def parse_args(args: list[str]) -> dict:
    """['a=1', 'b=x'] -> {'a': 1, 'b': 'x'} with Ultralytics' value parsing."""
    from ultralytics.cfg import merge_equals_args, smart_value

    out = {}
    for a in merge_equals_args(args):
        if "=" not in a:
            from yolo_kd.config import KDConfigError

            raise KDConfigError(f"expected key=value, got '{a}'. See 'yolo-kd help'.")
        k, v = a.split("=", 1)
        out[k] = smart_value(v)
    return out


def _require_model(mode: str, kw: dict) -> str:
    from yolo_kd.config import KDConfigError

    model = kw.pop("model", None)
    if not model:
        raise KDConfigError(f"'yolo-kd {mode}' needs model=path/to/weights.pt (e.g. runs/detect/train/weights/best.pt)")
    return str(model)


def run_mode(mode: str, kw: dict) -> int | None:
    """Dispatch one mode with its key=value arguments; a mode may return its exit status."""
    if mode == "train":
        from yolo_kd.trainer import KDTrainer

        KDTrainer(overrides=kw).train()
    elif mode == "val":
        from yolo_kd.preflight import check_ultralytics_args

        model = _require_model(mode, kw)
        check_ultralytics_args(kw)
        from ultralytics import YOLO

        YOLO(model).val(**kw)
    elif mode == "export":
        from yolo_kd.export import export

        export(_require_model(mode, kw), **kw)
    elif mode == "attention":
        from yolo_kd.visualize import attention_cli

        attention_cli(**kw)
    elif mode == "demo":
        from yolo_kd.demo import run_demo

        run_demo(**kw)
    elif mode == "bench":
        from yolo_kd.bench import run_bench

        run_bench(**kw)
    elif mode == "tune":
        from yolo_kd.tuning import tune

        tune(**kw)
    elif mode == "check":
        from yolo_kd.check import run_check

        return run_check(**kw)


MODES = ("train", "tune", "check", "val", "export", "attention", "demo", "bench", "help")


def main(argv: list[str] | None = None) -> int:
    """Run `yolo-kd MODE key=value ...`; every failure prints one line to stderr and returns non-zero."""
    from yolo_kd.errors import debug_requested, is_user_error, one_line

    argv = sys.argv[1:] if argv is None else list(argv)
    debug = debug_requested(argv)
    argv = [a for a in argv if a != "--debug"]
    if not argv or argv[0] in {"help", "-h", "--help"}:
        from yolo_kd.config import kd_defaults

        print(HELP)
        print("KD keys (defaults):\n  " + "\n  ".join(f"{k}={v}" for k, v in kd_defaults().items()))
        return 0
    mode, rest = argv[0], argv[1:]
    if mode not in MODES:
        print(f"yolo-kd: error: unknown mode '{mode}'; valid modes: {', '.join(MODES)}. See 'yolo-kd help'.", file=sys.stderr)
        return 2
    if mode == "demo":
        from yolo_kd.offline import use_offline_mode

        use_offline_mode()
    try:
        status = run_mode(mode, parse_args(rest))
    except KeyboardInterrupt:
        print("yolo-kd: interrupted", file=sys.stderr)
        return 130
    except SystemExit:
        raise
    except Exception as e:
        if debug:
            raise
        hint = "" if is_user_error(e) else f" ({type(e).__name__}; rerun with --debug for the traceback and report it)"
        print(f"yolo-kd: error: {one_line(e)}{hint}", file=sys.stderr)
        return 1
    return status or 0


if __name__ == "__main__":
    sys.exit(main())
