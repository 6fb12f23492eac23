"""The demo over 3 training seeds, for the README: `python docs/demo/seeds.py` after `yolo-kd demo`.

Seed 0 is the demo run itself (runs/demo); seeds 1 and 2 train the baseline and the distilled student again with the
same data and the same (seed-0) teacher, so each gain is a paired comparison. Writes docs/demo/seeds.md."""

import shutil
import sys
from pathlib import Path

from yolo_kd.offline import use_offline_mode

use_offline_mode()
from yolo_kd.demo import run_demo  # noqa: E402
from yolo_kd.runs import MAP, read_results  # noqa: E402

demo = Path("runs/demo")
rows = []
for seed in (0, 1, 2):
    project = demo if seed == 0 else Path(f"runs/demo-seed{seed}")
    if seed and not (project / "distilled" / "weights" / "best.pt").exists():
        if not (project / "teacher").exists():
            shutil.copytree(demo / "teacher", project / "teacher")  # the same teacher, reused
        run_demo(seed=seed, project=str(project))
    final = {k: read_results(project / k)[-1][MAP] for k in ("teacher", "baseline", "distilled")}
    rows.append((seed, final))
lines = ["| seed | teacher | baseline | distilled | gain (points) |", "|---|---|---|---|---|"]
for seed, f in rows:
    lines.append(f"| {seed} | {f['teacher']:.3f} | {f['baseline']:.3f} | {f['distilled']:.3f} | "
                 f"{100 * (f['distilled'] - f['baseline']):+.1f} |")
gains = [100 * (f["distilled"] - f["baseline"]) for _, f in rows]
lines.append(f"| mean | | {sum(f['baseline'] for _, f in rows) / 3:.3f} | {sum(f['distilled'] for _, f in rows) / 3:.3f} | "
             f"{sum(gains) / 3:+.1f} |")
Path("docs/demo/seeds.md").write_text("mAP50-95 on the demo's 100 validation images (final epoch)\n\n" + "\n".join(lines) + "\n")
print("\n".join(lines))
sys.exit(0)
