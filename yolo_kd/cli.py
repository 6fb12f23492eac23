"""`yolo-kd` command line, Ultralytics style: `yolo-kd MODE key=value ...`."""

from __future__ import annotations

import sys

HELP = """
yolo-kd: knowledge distillation for Ultralytics YOLO detectors

Usage: yolo-kd MODE key=value ...

  yolo-kd train teacher=yolov8l.pt student=yolov8n.yaml data=coco8.yaml epochs=100 imgsz=640 device=0
  yolo-kd train teacher=t.pt student=yolov8n.yaml data=d.yaml kd=cfg/paper.yaml fr=2.0   # preset + override
  yolo-kd train resume=True model=runs/detect/train/weights/last.pt
  yolo-kd val model=runs/detect/train/weights/best.pt data=d.yaml
  yolo-kd export model=runs/detect/train/weights/best.pt format=onnx imgsz=640   # checks ONNX Runtime vs PyTorch
  yolo-kd attention model=best.pt teacher=t.pt data=d.yaml    # teacher/GT/student attention maps as PNG
  yolo-kd demo                      # offline end-to-end demo on generated data (teacher, baseline, distilled)
  yolo-kd bench preset=cfg/bench_quick.yaml   # methods x seeds table, incl. Ultralytics' built-in distillation
  yolo-kd help

KD keys and defaults: yolo_kd/cfg/default.yaml. Any Ultralytics train key (epochs, batch, imgsz, device, ...) works.
"""


def parse_args(args: list[str]) -> dict:
    """['a=1', 'b=x'] -> {'a': 1, 'b': 'x'} with Ultralytics' value parsing."""
    from ultralytics.cfg import merge_equals_args, smart_value

    out = {}
    for a in merge_equals_args(args):
        if "=" not in a:
            raise SystemExit(f"yolo-kd: expected key=value, got '{a}'. See 'yolo-kd help'.")
        k, v = a.split("=", 1)
        out[k] = smart_value(v)
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in {"help", "-h", "--help"}:
        print(HELP)
        return 0
    mode, rest = argv[0], argv[1:]
    if mode == "demo":
        from yolo_kd.offline import use_offline_mode

        use_offline_mode()
    kw = parse_args(rest)
    from yolo_kd.config import KDConfigError
    from yolo_kd.teacher import TeacherError

    try:
        if mode == "train":
            from yolo_kd.trainer import KDTrainer

            KDTrainer(overrides=kw).train()
        elif mode == "val":
            from ultralytics import YOLO

            YOLO(str(kw.pop("model"))).val(**kw)
        elif mode == "export":
            from yolo_kd.export import export

            export(kw.pop("model"), **kw)
        elif mode == "attention":
            from yolo_kd.visualize import save_attention_maps

            print(save_attention_maps(**kw))
        elif mode == "demo":
            from yolo_kd.demo import run_demo

            run_demo(**kw)
        elif mode == "bench":
            from yolo_kd.bench import run_bench

            run_bench(**kw)
        else:
            print(f"yolo-kd: unknown mode '{mode}'.{HELP}", file=sys.stderr)
            return 2
    except (KDConfigError, TeacherError, FileNotFoundError) as e:
        print(f"yolo-kd: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
