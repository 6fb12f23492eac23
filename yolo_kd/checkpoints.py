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


def atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically (temporary file, fsync, os.replace); on failure the target is untouched."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
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


def publish(stage: Path, wdir: Path, extra: dict) -> list[Path]:
    """Add `extra` entries to the staged checkpoint (all staged files hold the same bytes), write it atomically over
    each same-named file in `wdir`, and remove the staging folder. Returns the files written."""
    files = sorted(stage.glob("*.pt"))
    if not files:
        return []
    ckpt = torch.load(files[0], map_location="cpu", weights_only=False)
    data = serialize({**ckpt, **extra})
    written = []
    for f in files:
        atomic_write(wdir / f.name, data)
        written.append(wdir / f.name)
    shutil.rmtree(stage, ignore_errors=True)
    return written


@contextmanager
def atomic_strip_optimizer():
    """While Ultralytics' `final_eval` runs, make its `strip_optimizer(f)` (an in-place torch.save) write a temporary
    file and replace `f` atomically. Scoped to the call; restored on exit."""
    import ultralytics.engine.trainer as ul_trainer

    original = ul_trainer.strip_optimizer

    def strip_atomically(f="best.pt", s="", updates=None):
        if s:
            return original(f, s, updates)
        f = Path(f)
        tmp = f.with_name(f".{f.name}.tmp")
        try:
            out = original(f, str(tmp), updates)
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, f)
        finally:
            tmp.unlink(missing_ok=True)
        return out

    ul_trainer.strip_optimizer = strip_atomically
    try:
        yield
    finally:
        ul_trainer.strip_optimizer = original
