"""Checks that run before a KDTrainer writes anything: Ultralytics' own keys, the student, the device, the output
folder and the checkpoint to resume. Each failure is a one-line `KDConfigError` (a ValueError) naming the fix."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .config import KDConfigError
from .errors import one_line


def check_ultralytics_args(ul: dict) -> None:
    """Run Ultralytics' own type and range checks (`epochs=0`, `batch=abc`, ...) up front."""
    from ultralytics.cfg import get_cfg
    from ultralytics.utils import DEFAULT_CFG

    try:
        get_cfg(DEFAULT_CFG, {k: v for k, v in ul.items() if k not in {"resume", "save_dir"}})
    except (TypeError, ValueError, SyntaxError) as e:
        raise KDConfigError(one_line(e)) from None


def check_device(device) -> None:
    """Refuse a device this machine does not have (e.g. `device=0` without CUDA) in one line."""
    from ultralytics.utils.torch_utils import select_device

    if device is None or str(device).strip().lower() in {"", "cpu"}:
        return
    try:
        select_device(str(device), verbose=False)
    except (ValueError, RuntimeError) as e:
        raise KDConfigError(one_line(e)) from None


def run_parent(ul: dict) -> Path:
    """The folder that will hold the run folder: `project=` as Ultralytics resolves it (relative -> runs_dir/detect)."""
    from ultralytics.utils import SETTINGS

    project = Path(str(ul.get("project") or ""))
    return project if project.is_absolute() else Path(SETTINGS["runs_dir"]) / "detect" / project


def check_writable(folder: Path, what: str) -> None:
    """Refuse an output folder that is a file, under a file, or not writable."""
    p = folder
    while not p.exists() and p != p.parent:
        p = p.parent
    if not p.is_dir():
        raise KDConfigError(f"{what}: '{p}' is a file, not a folder; choose another {what.split('=')[0]}=")
    if not os.access(p, os.W_OK | os.X_OK):
        raise KDConfigError(f"{what}: '{p}' is not writable; choose a writable {what.split('=')[0]}=")


def check_student(model) -> torch.nn.Module | str:
    """Return the student as Ultralytics will load it: a model from a .pt, or the YAML name. Refuse a missing or
    unreadable one before any run folder exists."""
    from ultralytics.nn.tasks import guess_model_task, load_checkpoint, yaml_model_load
    from ultralytics.utils.downloads import GITHUB_ASSETS_NAMES

    if model is None or str(model).strip() == "":
        raise KDConfigError("no student given: pass student=yolov8n.yaml (a model YAML) or student=path/to/weights.pt")
    name = str(model)
    if name.endswith((".yaml", ".yml")):
        if not Path(name).exists() and not Path(name).name.startswith("yolo"):
            raise KDConfigError(f"student model YAML '{name}' not found")
        task = guess_model_task(yaml_model_load(name))
        if task != "detect":
            raise KDConfigError(f"student '{name}' is a {task} model: yolo-kd distils detection students")
        return name
    if not Path(name).exists():
        if Path(name).name in GITHUB_ASSETS_NAMES:
            return name  # official weights, downloaded by Ultralytics when online
        raise KDConfigError(f"student '{name}' not found: pass a model YAML (student=yolov8n.yaml) or a .pt on disk")
    try:
        return load_checkpoint(name)[0]
    except Exception as e:
        raise KDConfigError(
            f"student '{name}' could not be loaded ({one_line(e, 120)}): pass an Ultralytics .pt or a model YAML"
        ) from None


def resolve_resume(ul: dict) -> tuple[str, dict]:
    """Resolve `resume=True [model=last.pt]` or `resume=path` to a readable checkpoint; return (path, checkpoint).

    A bare `resume=True` takes the newest last.pt under the runs folder, as `yolo train resume` does."""
    from ultralytics.utils.files import get_latest_run

    resume, model = ul.get("resume"), ul.get("model")
    if isinstance(resume, (str, Path)) and str(resume) not in {"", "True"}:
        path = str(resume)
    elif model:
        path = str(model)
    else:
        from ultralytics.utils import SETTINGS

        path = get_latest_run(SETTINGS["runs_dir"])
        if not path:
            raise KDConfigError(
                f"resume=True found no last.pt under {SETTINGS['runs_dir']}: pass model=path/to/weights/last.pt"
            )
    if not path.endswith(".pt"):
        raise KDConfigError(f"resume needs a checkpoint (.pt), got model={path}: pass model=path/to/weights/last.pt")
    if not Path(path).exists():
        raise KDConfigError(f"resume checkpoint '{path}' not found: pass model=path/to/weights/last.pt of the run")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        if not isinstance(ckpt, dict) or ckpt.get("ema", ckpt.get("model")) is None:
            raise ValueError("no model inside")
    except Exception as e:
        raise KDConfigError(
            f"resume checkpoint '{path}' cannot be read ({one_line(e, 100)}): it is truncated or corrupt; resume "
            f"from another checkpoint of the run (weights/epoch<N>.pt) or start a new run"
        ) from None
    return path, ckpt
