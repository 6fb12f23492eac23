"""How errors reach the user: one line, naming the problem and the fix.

User errors (bad keys, missing files, incompatible models) are `ValueError` subclasses (`KDConfigError`,
`TeacherError`) or the original `FileNotFoundError`; the CLI prints their first line. Anything else is a bug and is
printed the same way, with a pointer to `--debug` (or `YOLO_KD_DEBUG=1`) for the full traceback.
"""

from __future__ import annotations

import os
import re

DEBUG_ENV = "YOLO_KD_DEBUG"
_NOISE = re.compile(r"^(ERROR|WARNING)\s*\S*\s*")  # Ultralytics' 'ERROR ❌️ ' prefixes


def debug_requested(argv: list[str]) -> bool:
    """True when the user asked for full tracebacks (`--debug` anywhere, or YOLO_KD_DEBUG=1)."""
    return "--debug" in argv or os.environ.get(DEBUG_ENV, "").lower() in {"1", "true", "yes"}


def is_user_error(e: BaseException) -> bool:
    """Bad input or environment rather than a bug in yolo-kd."""
    return isinstance(e, (ValueError, OSError, KeyError)) or getattr(e, "user_facing", False)


def one_line(e: BaseException, limit: int = 400) -> str:
    """The first non-empty line of an exception's message, without Ultralytics' emoji prefixes, at most `limit`
    characters."""
    text = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    line = _NOISE.sub("", lines[0]) if lines else type(e).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."
