"""Offline Ultralytics: no downloads, no settings sync, a local font. Must run before `import ultralytics`.

Used by the demo, the tests and CI; `yolo-kd train` leaves Ultralytics' normal online behaviour alone unless
YOLO_OFFLINE=1 is already set.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def find_font() -> Path | None:
    """A .ttf to stand in for Ultralytics' Arial.ttf: matplotlib's bundled DejaVuSans."""
    try:
        import matplotlib

        f = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
        return f if f.exists() else None
    except ImportError:
        return None


def use_offline_mode(config_dir: str | Path | None = None) -> Path:
    """Set YOLO_OFFLINE/YOLO_AUTOINSTALL/YOLO_CONFIG_DIR and place fonts so Ultralytics never reaches the network.

    Returns the Ultralytics settings directory. Call before importing ultralytics.
    """
    config_dir = Path(config_dir or os.environ.get("YOLO_CONFIG_DIR") or Path.cwd() / ".yolo_config").resolve()
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["YOLO_AUTOINSTALL"] = "0"
    os.environ["YOLO_CONFIG_DIR"] = str(config_dir)
    settings_dir = config_dir / "Ultralytics"
    settings_dir.mkdir(parents=True, exist_ok=True)
    font = find_font()
    if font:
        for name in ("Arial.ttf", "Arial.Unicode.ttf"):
            if not (settings_dir / name).exists():
                shutil.copy(font, settings_dir / name)
    settings = settings_dir / "settings.json"
    if not settings.exists():
        settings.write_text('{"sync": false, "hub": false}\n')
    return settings_dir
