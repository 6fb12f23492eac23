#!/bin/bash
# Second GPU screen on the bench-sized tuning set with its strong teacher (cfg/bench_tune64_b_strong.yaml, generator
# seed 11, never the bench data; teacher carried as .carry/tune64b_strong_teacher.pt): today's `paper` against four
# variants and the built-in. Rule and results: README.md here. Set-up of the device machine: docs/gpu_sweep.sh.
#   usage: bash docs/tune64-b-strong-gpu2/run.sh OUT_DIR     (env: PY, DEVICE, JOBS, EPOCHS, SEEDS, METHODS, TEACHER, LIMIT)
T=cfg/tune
export PRESET=cfg/bench_tune64_b_strong.yaml NAME=tune64-b-strong-gpu2 TEACHER=${TEACHER:-.carry/tune64b_strong_teacher.pt}
export METHODS=${METHODS:-paper,$T/paper_raw.yaml,$T/paper_nobudget.yaml,$T/paper_final05.yaml,$T/paper_raw_nobudget.yaml,ultralytics}
export ARGS="{nbs: 16, optimizer: AdamW, lr0: 0.002, warmup_epochs: 3, mosaic: 0.0, scale: 0.2, val: false, workers: 1, amp: false}"
export SEEDS=${SEEDS:-12} JOBS=${JOBS:-12}
exec bash docs/gpu_sweep.sh "$@"
