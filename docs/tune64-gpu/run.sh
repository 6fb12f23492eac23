#!/bin/bash
# GPU tuning sweep on the tuning set (cfg/bench_tune64.yaml: generator seed 7, never the bench data): the variants of
# cfg/tune/ over 3 seeds, JOBS runs at a time on one GPU, with the tuning teacher that the CPU trained (0.521
# mAP50-95), carried as .carry/tune64_teacher.pt. Every finished run's bench.json lands in $OUT/runs.csv as it ends.
#   usage: bash docs/tune64-gpu/run.sh OUT_DIR     (env: PY, DEVICE, JOBS, EPOCHS, SEEDS, METHODS, DATASET, AMP,
#   LIMIT: seconds after which the sweep stops and reports what finished)
# On the device machine (no pip install of this repo; ultralytics and polars carried as wheels in .whl/):
#   pip install --no-index --no-deps --target /tmp/site .whl/*.whl; export PYTHONPATH=/tmp/site:$PWD
#   ln -sfn ../datasets yolo_kd/datasets   # the package maps yolo_kd.datasets to ./datasets when installed
set -u
OUT=$1
PY=${PY:-python3}
export YOLO_OFFLINE=1 YOLO_AUTOINSTALL=0 PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1
export YOLO_CONFIG_DIR=${YOLO_CONFIG_DIR:-$PWD/.carry/yolo_config}
T=cfg/tune
METHODS=${METHODS:-none,ultralytics,paper,paper_all,paper_no_sam,paper_with_resampling,paper_with_sam_transfer,paper_with_dkd,paper_with_fam,$T/paper_replica_batch.yaml}
NAME=tune64-gpu
B=$PWD/runs/bench/$NAME
ARGS="{nbs: 16, optimizer: AdamW, lr0: 0.002, warmup_epochs: 1, mosaic: 0.0, scale: 0.2, val: false, workers: 1, amp: ${AMP:-true}}"
EXTRA=()
[ -n "${DATASET:-}" ] && EXTRA+=("dataset=$DATASET")

collect() {  # every finished run -> $OUT/runs.csv (+ last kd_ratio and FAM alphas)
  $PY - "$B" "$OUT/runs.csv" <<'EOF'
import csv, json, sys
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
EOF
}

mkdir -p "$(dirname "$B")"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$OUT/gpu.txt" 2>&1
$PY -c "import torch, ultralytics; print('torch', torch.__version__, 'ultralytics', ultralytics.__version__)" >> "$OUT/gpu.txt" 2>&1
cat "$OUT/gpu.txt"
$PY -m yolo_kd.cli bench preset=cfg/bench_tune64.yaml name=$NAME teacher=.carry/tune64_teacher.pt "methods=$METHODS" \
  "seeds=${SEEDS:-3}" "epochs=${EPOCHS:-20}" "device=${DEVICE:-0}" "jobs=${JOBS:-10}" timing=false "train_args=$ARGS" \
  "${EXTRA[@]}" > "$B.log" 2>&1 &
pid=$!
start=$SECONDS
while kill -0 $pid 2>/dev/null; do
  sleep 20
  if [ $((SECONDS - start)) -gt "${LIMIT:-530}" ]; then echo "time limit: stopping the bench"; break; fi
  collect > /dev/null 2>&1
  echo "t=$((SECONDS - start))s finished=$(ls "$B"/*/bench.json 2>/dev/null | wc -l)"
done
kill -0 $pid 2>/dev/null || { wait $pid; echo "bench exit $?"; }
collect
grep -a -E "error|Error" "$B.log" | tail -5
tail -c 1000000 "$B.log" > "$OUT/bench_tail.log"
cp "$B/results.md" "$OUT/" 2>/dev/null && cat "$B/results.md"
