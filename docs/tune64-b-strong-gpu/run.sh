#!/bin/bash
# GPU replicate of the from-scratch screen on the bench-sized tuning set with its strong teacher
# (cfg/bench_tune64_b_strong.yaml: generator seed 11, never the bench data; the 150-epoch teacher trained on the CPU,
# carried as .carry/tune64b_strong_teacher.pt). JOBS runs at a time on one GPU, fp32 like the CPU runs (amp: false),
# seeds in order so that whole seeds finish first; every finished run's bench.json lands in $OUT/runs.csv.
# Ran at commit f95e3f9 (`paper` = constant weight, student-only clip); to rerun it as it was, check that commit out.
#   usage: bash docs/tune64-b-strong-gpu/run.sh OUT_DIR
#   env: PY, DEVICE, JOBS, EPOCHS, SEEDS, METHODS, TEACHER, LIMIT (seconds after which it stops and reports), EXTRA
# On the device machine (no pip install of this repo; ultralytics and its small deps carried as wheels in .whl/):
#   pip install --no-index --no-deps --target /tmp/site .whl/*.whl; export PYTHONPATH=/tmp/site:$PWD
#   ln -sfn ../datasets yolo_kd/datasets   # the package maps yolo_kd.datasets to ./datasets when installed
# polars (55 MB, over the carry limit) is replaced by an empty module: Ultralytics imports it only to copy results.csv
# into checkpoints (read_results_csv, which returns {} on any error) and for plots, which the bench turns off.
set -u
OUT=$1
PY=${PY:-python3}
export YOLO_OFFLINE=1 YOLO_AUTOINSTALL=0 PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1
export YOLO_CONFIG_DIR=${YOLO_CONFIG_DIR:-$PWD/.carry/yolo_config}
T=cfg/tune
METHODS=${METHODS:-none,paper,$T/paper_cosine.yaml,$T/paper_joint.yaml,$T/paper_cosine_joint.yaml,ultralytics}
NAME=tune64-b-strong-gpu
B=$PWD/runs/bench/$NAME
ARGS="{nbs: 16, optimizer: AdamW, lr0: 0.002, warmup_epochs: 3, mosaic: 0.0, scale: 0.2, val: false, workers: 1, amp: false}"

collect() {  # every finished run -> $OUT/runs.csv
  $PY - "$B" "$OUT/runs.csv" <<'PYEOF'
import csv, json, sys
from pathlib import Path
rows = []
for f in sorted(Path(sys.argv[1]).glob("*/bench.json")):
    r = json.loads(f.read_text())
    r["run"] = f.parent.name
    lines = list(csv.DictReader((f.parent / "results.csv").open()))
    r["kd_ratio_last"] = lines[-1].get("train/kd_ratio", "") if lines else ""
    rows.append(r)
keys = sorted({k for r in rows for k in r})
with open(sys.argv[2], "w", newline="") as fh:
    w = csv.DictWriter(fh, keys)
    w.writeheader()
    w.writerows(rows)
print(f"collected {len(rows)} runs")
PYEOF
}

mkdir -p "$(dirname "$B")"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$OUT/gpu.txt" 2>&1
$PY -c "import torch, ultralytics; print('torch', torch.__version__, 'ultralytics', ultralytics.__version__)" >> "$OUT/gpu.txt" 2>&1
cat "$OUT/gpu.txt"
$PY -m yolo_kd.cli bench preset=cfg/bench_tune64_b_strong.yaml name=$NAME "teacher=${TEACHER:-.carry/tune64b_strong_teacher.pt}" \
  "methods=$METHODS" "seeds=${SEEDS:-8}" "epochs=${EPOCHS:-20}" "device=${DEVICE:-0}" "jobs=${JOBS:-12}" timing=false \
  "train_args=$ARGS" ${EXTRA:-} > "$B.log" 2>&1 &
pid=$!
start=$SECONDS
while kill -0 $pid 2>/dev/null; do
  sleep 15
  if [ $((SECONDS - start)) -gt "${LIMIT:-450}" ]; then echo "time limit: stopping the bench"; pkill -P $pid; kill $pid; break; fi
  collect > /dev/null 2>&1
  echo "t=$((SECONDS - start))s finished=$(ls "$B"/*/bench.json 2>/dev/null | wc -l)"
done
kill -0 $pid 2>/dev/null || { wait $pid; echo "bench exit $?"; }
collect
grep -a -E "error|Error" "$B.log" | tail -5
tail -c 2000000 "$B.log" > "$OUT/bench_tail.log"
cp "$B/results.md" "$OUT/" 2>/dev/null && cat "$B/results.md"
