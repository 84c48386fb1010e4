# fedtrain: set-up, tests, benchmarks and experiment runs. See README.md.
SHELL := /bin/bash
APT_PACKAGES := pkg-config libopenblas-dev liblapacke-dev zlib1g-dev dataset-fashion-mnist
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
FEDTRAIN := .build/release/fedtrain
VENV := .venv
PYTHON := $(VENV)/bin/python

.PHONY: deps build run test bench compare clean

## deps: install the Debian packages fedtrain needs, only those that are missing
deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing:" $$missing; \
		$(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

## build: release build of the fedtrain executable
build: deps
	swift build -c release --product fedtrain

## run: the main job on the default data (centralized LeNet-5 on Fashion-MNIST, 10 epochs)
run: build
	@mkdir -p results/train
	$(FEDTRAIN) train --epochs 10 --batch-size 64 --lr 0.02 --momentum 0.9 --summary results/train/summary.json \
		--save results/train/model.safetensors

## test: the whole test suite (what CI runs)
test: deps
	swift test

## bench: the benchmark target (training-step throughput and malloc counts, kernels)
bench: deps
	cd Benchmarks && swift package --allow-writing-to-package-directory benchmark

## compare: this engine beside PyTorch on LeNet-5, same batch sizes and threads, in one run
compare: build
	@if [ ! -x $(PYTHON) ] || ! $(PYTHON) -c "import torch" 2>/dev/null; then \
		python3 -m venv $(VENV) && $(VENV)/bin/pip install -q torch numpy \
		|| { echo "make compare: skipped: could not install PyTorch with pip (is PyPI reachable?)"; exit 0; }; \
	fi; \
	$(PYTHON) scripts/compare.py --fedtrain $(FEDTRAIN)

clean:
	rm -rf .build Benchmarks/.build
