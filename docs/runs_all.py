"""Every finished run of a bench folder in one CSV, previous defaults and ablations included (the bench's own runs.csv
holds only the methods of its last invocation).

    python docs/runs_all.py runs/bench/cpu docs/bench-cpu/runs-all.csv

Columns: run (folder), method (as recorded in bench.json), kd_schedule (from the run's kd.yaml; empty for runs
without yolo-kd's KD, i.e. `none` and `ultralytics`), then bench.json's metrics."""

import csv
import json
import sys
from pathlib import Path

import yaml

FIELDS = ["run", "method", "kd_schedule", "seed", "mAP50", "mAP50-95", "s_per_epoch", "time_ratio", "time_kd_step",
          "time_student_step", "time_teacher_forward", "peak_mem_mib", "peak_mem_kind", "params"]


def rows(bench_dir: Path) -> list[dict]:
    out = []
    for result in sorted(bench_dir.glob("*/bench.json")):
        row = {"run": result.parent.name, **json.loads(result.read_text())}
        kd = result.parent / "kd.yaml"
        method = row.get("method")
        if kd.exists() and method not in ("none", "ultralytics"):
            row["kd_schedule"] = (yaml.safe_load(kd.read_text()) or {}).get("kd_schedule", "constant")
        out.append(row)
    return out


if __name__ == "__main__":
    src, dst = Path(sys.argv[1]), Path(sys.argv[2])
    runs = rows(src)
    with dst.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(runs)
    print(f"{dst}: {len(runs)} runs")
