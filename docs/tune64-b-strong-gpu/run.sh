#!/bin/bash
# GPU replicate of the from-scratch screen on the bench-sized tuning set with its strong teacher
# (cfg/bench_tune64_b_strong.yaml: generator seed 11, never the bench data; the 150-epoch teacher trained on the CPU,
# carried as .carry/tune64b_strong_teacher.pt). JOBS runs at a time on one GPU, fp32 like the CPU runs (amp: false),
# seeds in order so that whole seeds finish first. The sweep itself, and the device machine's set-up: docs/gpu_sweep.sh.
# Ran at commit f95e3f9 (`paper` = constant weight, student-only clip); to rerun it as it was, check that commit out.
#   usage: bash docs/tune64-b-strong-gpu/run.sh OUT_DIR     (env: PY, DEVICE, JOBS, EPOCHS, SEEDS, METHODS, TEACHER, LIMIT, NAME)
# polars (55 MB, over the carry limit) is replaced there by an empty module (cp -r .carry/stub/polars /tmp/site/):
# Ultralytics imports it only to copy results.csv into checkpoints (read_results_csv, which returns {} on any error)
# and for plots, which the bench turns off.
T=cfg/tune
export PRESET=cfg/bench_tune64_b_strong.yaml NAME=${NAME:-tune64-b-strong-gpu} TEACHER=${TEACHER:-.carry/tune64b_strong_teacher.pt}
export METHODS=${METHODS:-none,paper,$T/paper_cosine.yaml,$T/paper_joint.yaml,$T/paper_cosine_joint.yaml,ultralytics}
export ARGS="{nbs: 16, optimizer: AdamW, lr0: 0.002, warmup_epochs: 3, mosaic: 0.0, scale: 0.2, val: false, workers: 1, amp: false}"
export SEEDS=${SEEDS:-8} JOBS=${JOBS:-12}
exec bash docs/gpu_sweep.sh "$@"
