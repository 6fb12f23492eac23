"""The Ultralytics versions yolo-kd is tested with. yolo-kd subclasses Ultralytics' trainer and reads its loss
internals, so an untested version fails here with a clear message instead of deep inside training."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

ULTRALYTICS_MIN = "8.4.140"  # oldest release that passes tests/test_contracts.py (8.4.139 and 8.3.x do not)
ULTRALYTICS_MAX = "8.5.0"  # exclusive


def _parse(v: str) -> tuple[int, ...]:
    return tuple(int("".join(ch for ch in p if ch.isdigit()) or 0) for p in v.split(".")[:3])


def check_ultralytics() -> str:
    """Return the installed Ultralytics version or raise ImportError if it is outside the tested range."""
    try:
        v = version("ultralytics")
    except PackageNotFoundError as e:
        raise ImportError("yolo-kd needs ultralytics: pip install 'ultralytics>=8.4.140,<8.5'") from e
    if not _parse(ULTRALYTICS_MIN) <= _parse(v) < _parse(ULTRALYTICS_MAX):
        raise ImportError(
            f"yolo-kd is tested with ultralytics>={ULTRALYTICS_MIN},<{ULTRALYTICS_MAX} but {v} is installed: "
            f"pip install 'ultralytics>={ULTRALYTICS_MIN},<{ULTRALYTICS_MAX}'"
        )
    return v
