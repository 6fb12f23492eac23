#!/bin/bash
# GPU ablation: teacher (40 ep) then none + paper + 4 ablations (30 ep, seed 0) in parallel on one GPU.
# Ran 2026-11 at a commit where `paper` had all four ideas on; the paper_no_* presets it names were removed when the
# defaults changed (commit 2afeb70): to rerun it as it was, check out a commit before that one.
set -u
OUT=$1
export YOLO_OFFLINE=1 YOLO_AUTOINSTALL=0 YOLO_CONFIG_DIR=$PWD/.yolo_config PYTHONUNBUFFERED=1
B=$PWD/runs/bench/gpu-ablation
PRE="preset=cfg/bench_gpu_smoke.yaml name=gpu-ablation teacher_epochs=40 epochs=30 seeds=1"
python3 -P -c "
from yolo_kd.offline import use_offline_mode; use_offline_mode()
from yolo_kd.bench import load_settings; from yolo_kd.datasets.shapes import ensure; from yolo_kd.runs import train_teacher
c = load_settings('cfg/bench_gpu_smoke.yaml'); d = str(ensure(**c['dataset']))
train_teacher('yolov8s.yaml', '$B/teacher', epochs=40, seed=0, data=d, imgsz=128, batch=32, device='0', plots=False)
" > $OUT/teacher.log 2>&1 || { tail -20 $OUT/teacher.log; exit 1; }
grep -a "  all " $OUT/teacher.log | tail -1
T=$B/teacher/weights/best.pt
D=$PWD/datasets/shapes-bench/data.yaml
for m in none paper paper_no_fr paper_no_sam paper_no_dkd paper_no_fam; do
  spec="{\"method\": \"$m\", \"run_dir\": \"$B/$m-s0\", \"teacher\": \"$T\", \"train\": {\"model\": \"yolov8n.yaml\", \"epochs\": 30, \"seed\": 0, \"data\": \"$D\", \"imgsz\": 128, \"batch\": 32, \"device\": \"0\", \"plots\": false, \"workers\": 2}}"
  python3 -P -m yolo_kd.bench "$spec" > $OUT/$m.log 2>&1 &
done
wait
python3 -P -m yolo_kd.cli bench $PRE teacher=$T methods=none,paper,paper_no_fr,paper_no_sam,paper_no_dkd,paper_no_fam > $OUT/report.log 2>&1
cp $B/results.md $B/results.csv $B/results.png $OUT/ 2>/dev/null
cat $B/results.md
