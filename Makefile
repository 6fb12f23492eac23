# make demo: create .venv, install, run the offline demo on generated data.
# make test: same install, run the test suite (offline).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
export YOLO_OFFLINE := 1
export YOLO_AUTOINSTALL := 0
export YOLO_CONFIG_DIR := $(CURDIR)/.yolo_config

.PHONY: install demo test bench clean

$(BIN)/.installed: setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.14.1 torchvision==0.29.1 || $(BIN)/pip install -q torch torchvision
	$(BIN)/pip install -q -e ".[export,test]"
	touch $@

install: $(BIN)/.installed

demo: install
	$(BIN)/yolo-kd demo

test: install
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/yolo-kd bench preset=cfg/bench_cpu.yaml

clean:
	rm -rf $(VENV) .yolo_config runs build *.egg-info
