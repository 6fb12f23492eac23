"""`yolo-kd check teacher=... student=... data=...`: the distillation plan, without training.

Prints the matched detection levels (strides, channels), the adapters and KD terms that would be built (and those
that would not, with the reason), the class mapping, the size and cost of both models with the teacher's estimated
share of a training step, and whether `yolo-kd train` would start. Returns 0 when it would, 1 when it would be
refused (the reason is printed as the last line).
"""

from __future__ import annotations

from torch import nn

from .errors import one_line


def _model_cost(model: nn.Module, imgsz: int) -> tuple[float, float]:
    """(parameters in millions, GFLOPs of one forward pass at imgsz)."""
    from ultralytics.utils.torch_utils import get_flops

    return sum(p.numel() for p in model.parameters()) / 1e6, get_flops(model, imgsz)


def plan(teacher: str | None = None, student: str | None = None, data: str | None = None, imgsz: int = 640,
         **kd_keys) -> tuple[list[str], str | None]:
    """The plan as printable lines, and the reason training would be refused (None when it would start)."""
    from ultralytics.data.utils import check_det_dataset
    from ultralytics.nn.tasks import DetectionModel

    from .config import KDConfig, KDConfigError, split_overrides, starts_from_weights, summarize_names
    from .distiller import build_distiller
    from .preflight import check_student
    from .teacher import check_channels, check_levels, class_names, detect_head, load_teacher

    lines = []
    try:
        if not (teacher and student and data):
            raise KDConfigError("'yolo-kd check' needs teacher=, student= and data=")
        _, kd = split_overrides({**kd_keys, "teacher": teacher})
        cfg = KDConfig.from_overrides(kd, finetuning=starts_from_weights({"model": student}))
        d = check_det_dataset(data)
        channels = d.get("channels", 3)
        s_model = check_student(student)
        if not isinstance(s_model, nn.Module):
            s_model = DetectionModel(s_model, ch=channels, nc=d["nc"], verbose=False)
        t_model = load_teacher(teacher, names=d["names"], channels=channels)
        lines.append(f"yolo-kd check: teacher {teacher} -> student {student}, data {data} ({d['nc']} classes, "
                     f"{channels} channel(s)), imgsz {imgsz}, method {cfg.method}")
        check_channels(t_model, channels, teacher)
        check_levels(t_model, s_model)
        s_model, t_model = s_model.float().eval(), t_model.float().eval()
        dist, cmap = build_distiller(cfg, s_model, t_model, d["names"], channels)
        strides = [int(s) for s in detect_head(s_model).stride.tolist()]
        for s, cs, ct in zip(strides, dist.pair.s_channels, dist.pair.t_channels):
            lines.append(f"  level P{s.bit_length() - 1} (stride {s:>2}): student {cs:>4} ch -> teacher {ct:>4} ch")
        if cmap is None:
            lines.append(f"  classes: none shared (teacher {summarize_names(class_names(t_model))}; "
                         f"data {summarize_names(d['names'])})")
        else:
            lines.append(f"  classes: {'identical' if cmap.identity else cmap.describe()}")
        for name, module in dist.named_children():
            n = sum(p.numel() for p in module.parameters())
            lines.append(f"  adapter {name}: {type(module).__name__}, {n:,} parameters")
        lines.append(f"  terms built: {', '.join(f'{k} (x{w:g})' for k, w in dist.weights.items()) or 'none'}")
        for term, reason in dist.skipped.items():
            lines.append(f"  not built: {term}: {reason}")
        (sp, sf), (tp, tf) = _model_cost(s_model, imgsz), _model_cost(t_model, imgsz)
        share = tf / (3 * sf + tf) if sf + tf > 0 else float("nan")  # a training step ~ 3 student forwards
        lines.append(f"  student {sp:.2f} M params, {sf:.1f} GFLOPs; teacher {tp:.2f} M params, {tf:.1f} GFLOPs; "
                     f"teacher forward ~{100 * share:.0f}% of a training step (FLOPs, student fwd+bwd ~ 3 fwd)")
        if cmap is None and cfg.method != "none" and not cfg.allow_class_mismatch:
            raise KDConfigError("teacher and data share no class: pass class_map=\"{data_name: teacher_name}\" or "
                                "allow_class_mismatch=True (features only)")
    except Exception as e:  # every refusal is reported the same way as by `yolo-kd train`
        return lines, one_line(e)
    return lines, None


def run_check(**kw) -> int:
    """Print the plan; return the exit status (0: training would start, 1: refused)."""
    lines, refused = plan(**kw)
    print("\n".join(lines))
    if refused:
        print(f"refused: {refused}")
        return 1
    print("ok: `yolo-kd train` with these settings would start")
    return 0
