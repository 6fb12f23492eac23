#!/bin/bash
# One GPU sweep through `yolo-kd bench`: JOBS runs at a time on one GPU, every finished run collected into
# $OUT/runs.csv as it ends (docs/collect_runs.py), stopped after LIMIT seconds with what finished. Called by the
# docs/*-gpu/run.sh scripts, which set the preset, teacher and methods.
#   usage: PRESET=... NAME=... TEACHER=... METHODS=... ARGS=... bash docs/gpu_sweep.sh OUT_DIR
#   env: PY, DEVICE, JOBS, EPOCHS, SEEDS, LIMIT, EXTRA (more key=value bench arguments)
# On the device machine (no pip install of this repo; ultralytics and its small deps carried as wheels in .whl/):
#   pip install --no-index --no-deps --target /tmp/site .whl/*.whl; export PYTHONPATH=/tmp/site:$PWD
#   ln -sfn ../datasets yolo_kd/datasets   # the package maps yolo_kd.datasets to ./datasets when installed
set -u
OUT=$1
PY=${PY:-python3}
export YOLO_OFFLINE=1 YOLO_AUTOINSTALL=0 PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1
export YOLO_CONFIG_DIR=${YOLO_CONFIG_DIR:-$PWD/.carry/yolo_config}
B=$PWD/runs/bench/$NAME

mkdir -p "$(dirname "$B")"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$OUT/gpu.txt" 2>&1
$PY -c "import torch, ultralytics; print('torch', torch.__version__, 'ultralytics', ultralytics.__version__)" >> "$OUT/gpu.txt" 2>&1
cat "$OUT/gpu.txt"
$PY -m yolo_kd.cli bench "preset=$PRESET" "name=$NAME" "teacher=$TEACHER" "methods=$METHODS" "seeds=${SEEDS:-3}" \
  "epochs=${EPOCHS:-20}" "device=${DEVICE:-0}" "jobs=${JOBS:-10}" timing=false "train_args=$ARGS" ${EXTRA:-} > "$B.log" 2>&1 &
pid=$!
start=$SECONDS
while kill -0 $pid 2>/dev/null; do
  sleep 15
  if [ $((SECONDS - start)) -gt "${LIMIT:-450}" ]; then echo "time limit: stopping the bench"; pkill -P $pid; kill $pid; break; fi
  $PY docs/collect_runs.py "$B" "$OUT/runs.csv" > /dev/null 2>&1
  echo "t=$((SECONDS - start))s finished=$(ls "$B"/*/bench.json 2>/dev/null | wc -l)"
done
kill -0 $pid 2>/dev/null || { wait $pid; echo "bench exit $?"; }
$PY docs/collect_runs.py "$B" "$OUT/runs.csv"
grep -a -E "error|Error" "$B.log" | tail -5
tail -c 2000000 "$B.log" > "$OUT/bench_tail.log"
cp "$B/results.md" "$OUT/" 2>/dev/null && cat "$B/results.md"
