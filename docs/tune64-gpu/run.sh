#!/bin/bash
# GPU tuning sweep on the tuning set (cfg/bench_tune64.yaml: generator seed 7, never the bench data): the variants of
# cfg/tune/ over 3 seeds, JOBS runs at a time on one GPU, with the tuning teacher that the CPU trained (0.521
# mAP50-95), carried as .carry/tune64_teacher.pt. The sweep itself, and the device machine's set-up: docs/gpu_sweep.sh.
#   usage: bash docs/tune64-gpu/run.sh OUT_DIR     (env: PY, DEVICE, JOBS, EPOCHS, SEEDS, METHODS, DATASET, AMP, LIMIT)
# Ran with polars carried as a wheel too (see docs/tune64-b-strong-gpu/run.sh for the stand-in used since).
T=cfg/tune
export PRESET=cfg/bench_tune64.yaml NAME=tune64-gpu TEACHER=.carry/tune64_teacher.pt
export METHODS=${METHODS:-none,ultralytics,paper,paper_all,paper_no_sam,paper_with_resampling,paper_with_sam_transfer,paper_with_dkd,paper_with_fam,$T/paper_replica_batch.yaml}
export ARGS="{nbs: 16, optimizer: AdamW, lr0: 0.002, warmup_epochs: 1, mosaic: 0.0, scale: 0.2, val: false, workers: 1, amp: ${AMP:-true}}"
export LIMIT=${LIMIT:-530} EXTRA=${DATASET:+dataset=$DATASET}
exec bash docs/gpu_sweep.sh "$@"
