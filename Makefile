# make demo: create .venv, install, run the offline demo on generated data.
# make test: same install, run the test suite without the end-to-end runs marked slow (offline).
# make test-slow: the end-to-end runs (bench, demo, tune, a real 2-trial Ray Tune search, SIGKILL resume, ...).
# make test-oldest: the suite against the oldest Ultralytics release yolo-kd claims (ULTRALYTICS_MIN in compat.py).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
export YOLO_OFFLINE := 1
export YOLO_AUTOINSTALL := 0
export YOLO_CONFIG_DIR := $(CURDIR)/.yolo_config

.PHONY: install install-ray demo test test-slow test-ray test-oldest bench clean

# --no-compile: Python compiles only the modules it imports, on first import (about 15 s less install on 2 cores)
$(BIN)/.installed: setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q --no-compile torch==2.14.1 torchvision==0.29.1 || $(BIN)/pip install -q --no-compile torch torchvision
	$(BIN)/pip install -q --no-compile -e ".[export,test]"
	touch $@

$(BIN)/.installed-ray: $(BIN)/.installed
	$(BIN)/pip install -q -e ".[export,test,ray]"
	touch $@

install: $(BIN)/.installed

install-ray: $(BIN)/.installed-ray  # Ray Tune, for the slow suite's real 2-trial search (make test-slow, test-ray)

demo: install
	$(BIN)/yolo-kd demo

test: install
	$(BIN)/python -m pytest -q -m "not slow"

test-slow: install-ray
	$(BIN)/python -m pytest -q -m slow

test-ray: install-ray
	$(BIN)/python -m pytest -q -m ray

OLDEST := $(shell sed -n 's/^ULTRALYTICS_MIN = "\(.*\)".*/\1/p' yolo_kd/compat.py)
test-oldest:
	test -x .venv-oldest/bin/python || $(PY) -m venv .venv-oldest
	.venv-oldest/bin/pip install -q torch==2.14.1 torchvision==0.29.1 || .venv-oldest/bin/pip install -q torch torchvision
	.venv-oldest/bin/pip install -q -e ".[export,test]" "ultralytics==$(OLDEST)"
	.venv-oldest/bin/python -m pytest -q tests/test_contracts.py tests/test_losses.py tests/test_trainer.py

bench: install  # from scratch, then fine-tuning (the second reuses the first's teacher)
	$(BIN)/yolo-kd bench preset=cfg/bench_cpu.yaml
	$(BIN)/yolo-kd bench preset=cfg/bench_cpu_ft.yaml

clean:
	rm -rf $(VENV) .venv-oldest .yolo_config runs build *.egg-info
