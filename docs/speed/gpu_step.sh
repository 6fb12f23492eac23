#!/bin/bash
# GPU step ratio and peak CUDA memory, `paper` (package defaults) against Ultralytics' built-in distillation, one after
# the other on the same machine: 640 px (issue 11's GPU target) and 128 px (the earlier GPU smoke figure), yolov8n
# students, yolov8s/yolov8l teachers. Then the CUDA tests (AMP distillation, no host sync in the KD step, AutoBatch).
#   usage on the device machine: bash docs/speed/gpu_step.sh OUT_DIR      (env: PY, LIMIT seconds, REPS, TESTS=0)
# No pip install of this repo there: ultralytics and polars travel as wheels in .whl/ (see docs/tune64-gpu/run.sh).
set -u
OUT=$1
PY=${PY:-python3}
export YOLO_OFFLINE=1 YOLO_AUTOINSTALL=0 PYTHONUNBUFFERED=1
export YOLO_CONFIG_DIR=${YOLO_CONFIG_DIR:-$PWD/.carry/yolo_config}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$OUT/gpu.txt" 2>&1
$PY -c "import torch, ultralytics; print('torch', torch.__version__, 'ultralytics', ultralytics.__version__)" >> "$OUT/gpu.txt" 2>&1
cat "$OUT/gpu.txt"
$PY datasets/shapes.py root=/tmp/shapes-640 train=160 val=8 imgsz=640 seed=1 &
$PY datasets/shapes.py root=/tmp/shapes-128 train=200 val=8 imgsz=128 seed=1 &
wait
start=$SECONDS
# imgsz batch teacher amp
for setting in "640 16 yolov8l true" "640 16 yolov8s true" "640 64 yolov8l true" "128 32 yolov8s true" \
               "128 32 yolov8s false"; do
  set -- $setting
  for variant in paper builtin; do
    if [ $((SECONDS - start)) -gt "${LIMIT:-330}" ]; then echo "time limit: skipping $variant $setting"; continue; fi
    $PY docs/speed/gpu_step.py $variant $1 $2 /tmp/shapes-$1/data.yaml $3.yaml $4 "${REPS:-2}" \
      2>> "$OUT/gpu_step.log" | tee -a "$OUT/gpu_step.log" | grep '^{"variant' | tee -a "$OUT/gpu_step.ndjson"
  done
done
[ "${TESTS:-1}" = 0 ] && exit 0
timeout 150 $PY -m pytest -q -p no:cacheprovider tests/test_cuda.py > "$OUT/cuda_tests.log" 2>&1
tail -n 5 "$OUT/cuda_tests.log"
