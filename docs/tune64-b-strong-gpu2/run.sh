#!/bin/bash
# Second GPU screen on the bench-sized tuning set with its strong teacher: today's `paper` against four variants and
# the built-in, 12 seeds. The same preset, teacher and recipe as the first screen, so it runs through that screen's
# script (docs/tune64-b-strong-gpu/run.sh; device set-up: docs/gpu_sweep.sh). Rule and results: README.md here.
#   usage: bash docs/tune64-b-strong-gpu2/run.sh OUT_DIR     (env: as docs/tune64-b-strong-gpu/run.sh)
T=cfg/tune
export NAME=tune64-b-strong-gpu2 SEEDS=${SEEDS:-12}
export METHODS=${METHODS:-paper,$T/paper_raw.yaml,$T/paper_nobudget.yaml,$T/paper_final05.yaml,$T/paper_raw_nobudget.yaml,ultralytics}
exec bash docs/tune64-b-strong-gpu/run.sh "$@"
