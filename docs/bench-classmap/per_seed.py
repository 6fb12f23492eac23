"""Per-seed table of the class-mapped teacher bench: `python docs/bench-classmap/per_seed.py` after
`yolo-kd bench preset=cfg/bench_classmap.yaml` (reads runs.csv beside this file, writes per_seed.md)."""

import csv
from pathlib import Path

here = Path(__file__).parent
runs = {(r["method"], int(r["seed"])): float(r["mAP50-95"]) for r in csv.DictReader(open(here / "runs.csv"))}
seeds = sorted({s for _, s in runs})
cols = [("none", "none"), ("paper_features", "features only"), ("paper_mapped_only", "mapped, unlabeled ignored"),
        ("paper", "mapped, unlabeled as background (default)")]
diffs = [("paper_features", "none", "features − none"), ("paper", "none", "mapped − none"),
         ("paper", "paper_features", "mapped − features"), ("paper", "paper_mapped_only", "background − ignored")]
lines = ["| seed | " + " | ".join(c for _, c in cols) + " | " + " | ".join(d for *_, d in diffs) + " |",
         "|---" * (1 + len(cols) + len(diffs)) + "|"]
for label, pick in [(str(s), lambda m, s=s: runs[m, s]) for s in seeds] + [
        ("mean", lambda m: sum(runs[m, s] for s in seeds) / len(seeds))]:
    lines.append(f"| {label} | " + " | ".join(f"{pick(m):.3f}" for m, _ in cols) + " | "
                 + " | ".join(f"{100 * (pick(a) - pick(b)):+.1f}" for a, b, _ in diffs) + " |")
(here / "per_seed.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
