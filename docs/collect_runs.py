"""Every finished bench run under RUN_DIR -> one CSV (its bench.json, the last epoch's kd_ratio and, where logged, the
last FAM alphas), for the GPU sweeps that may stop before the bench writes its report.
    usage: python docs/collect_runs.py RUN_DIR OUT.csv"""

import csv
import json
import sys
from pathlib import Path

rows = []
for f in sorted(Path(sys.argv[1]).glob("*/bench.json")):
    r = json.loads(f.read_text())
    r["run"] = f.parent.name
    lines = list(csv.DictReader((f.parent / "results.csv").open()))
    r["kd_ratio_last"] = lines[-1].get("train/kd_ratio", "") if lines else ""
    fam = f.parent / "fam_alpha.csv"
    if fam.exists():
        last = list(csv.DictReader(fam.open()))[-1]
        r["fam_alpha_last"] = " ".join(f"{k}={v}" for k, v in last.items() if k != "epoch")
    rows.append(r)
keys = sorted({k for r in rows for k in r})
with open(sys.argv[2], "w", newline="") as fh:
    w = csv.DictWriter(fh, keys)
    w.writeheader()
    w.writerows(rows)
print(f"collected {len(rows)} runs")
