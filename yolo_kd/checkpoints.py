"""Checkpoint writes that never leave a half-written file: every write goes to a temporary file in the same folder,
is flushed to disk, and replaces its target with one atomic `os.replace`. A kill, a full disk or any other fault
during a write leaves either the previous complete file or the new complete file."""

from __future__ import annotations

import io
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import torch


def _temporary(path: Path) -> Path:
    """The temporary file beside `path` that an atomic write goes through."""
    return path.with_name(f".{path.name}.tmp")


def _fsync_replace(src: Path, dst: Path) -> None:
    """Flush the complete file `src` to disk, then rename it over `dst` in one atomic step."""
    with open(src, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(src, dst)


def atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically (temporary file, fsync, os.replace); on failure the target is untouched."""
    path = Path(path)
    tmp = _temporary(path)
    try:
        tmp.write_bytes(data)
        _fsync_replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def serialize(obj) -> bytes:
    """torch.save to bytes."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


@contextmanager
def staged_checkpoints(trainer):
    """Point the trainer's `wdir`, `last` and `best` at a staging folder while Ultralytics writes its checkpoints
    (it writes them in place); yield the staging folder. The caller publishes the staged files atomically."""
    stage = trainer.wdir / ".staging"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    saved = trainer.wdir, trainer.last, trainer.best
    trainer.wdir, trainer.last, trainer.best = stage, stage / trainer.last.name, stage / trainer.best.name
    try:
        yield stage
    finally:
        trainer.wdir, trainer.last, trainer.best = saved


def kd_sidecar(checkpoint: Path) -> Path:
    """Where the KD state of a checkpoint lives: weights/last.pt -> weights/kd_last.pt (a prefix, so Ultralytics'
    `last*.pt` search for the newest run never picks it)."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(f"kd_{checkpoint.name}")


def publish(stage: Path, wdir: Path) -> list[Path]:
    """Move every staged checkpoint over its namesake in `wdir` with one atomic rename each (after fsync), without
    reading or rewriting it; remove the staging folder. Returns the published files."""
    published = []
    for f in sorted(stage.glob("*.pt")):
        _fsync_replace(f, wdir / f.name)
        published.append(wdir / f.name)
    shutil.rmtree(stage, ignore_errors=True)
    return published


@contextmanager
def atomic_strip_optimizer(extra: dict | None = None):
    """While Ultralytics' `final_eval` runs, make its `strip_optimizer(f)` (an in-place torch.save) write a temporary
    file and replace `f` atomically, adding the `extra` entries to the stripped checkpoint. Scoped to the call."""
    import ultralytics.engine.trainer as ul_trainer

    original = ul_trainer.strip_optimizer

    def strip_atomically(f="best.pt", s="", updates=None):
        updates = {**(updates or {}), **(extra or {})}
        if s:
            return original(f, s, updates)
        f = Path(f)
        tmp = _temporary(f)
        try:
            out = original(f, str(tmp), updates)
            _fsync_replace(tmp, f)
        finally:
            tmp.unlink(missing_ok=True)
        return out

    ul_trainer.strip_optimizer = strip_atomically
    try:
        yield
    finally:
        ul_trainer.strip_optimizer = original


def load_kd_entry(checkpoint: Path, ckpt: dict) -> dict:
    """The KD entry of a checkpoint ({"cfg", "teacher", "state", "epoch"}): its sidecar, else the "kd" entry stored
    inside the checkpoint (finished runs, and older yolo-kd versions); {} when there is none or the sidecar is
    unreadable (the KD modules then restart, with a warning from the caller)."""
    sidecar = kd_sidecar(checkpoint)
    if sidecar.exists():
        try:
            return torch.load(sidecar, map_location="cpu", weights_only=False) or {}
        except Exception:
            return {}
    return ckpt.get("kd") or {}
