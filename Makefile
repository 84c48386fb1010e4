# fedtrain: set-up, tests, benchmarks and experiment runs. See README.md.
SHELL := /bin/bash
APT_PACKAGES := pkg-config libopenblas-dev liblapacke-dev zlib1g-dev dataset-fashion-mnist libpng-dev libjpeg62-turbo-dev
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
FEDTRAIN := .build/release/fedtrain
VENV := .venv
PYTHON := $(VENV)/bin/python
FASHION_MNIST_FILES := $(foreach f,train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz \
	t10k-labels-idx1-ubyte.gz,/usr/share/datasets/fashion-mnist/$(f))
TORCH_SCRIPTS := scripts/torch_lenet5.py scripts/script_support.py
# $(call require_files,TARGET,FILES[,HINT]): a recipe line that stops with one line and status 2 when a file is missing
require_files = @for f in $(2); do [ -e "$$f" ] || { echo "make $(1): $$f does not exist$(if $(3), ($(3)))"; exit 2; }; done

.PHONY: federation fuzz bench-transport server-memory compare-federation deps build run train test bench compare experiment plot niid-bench compression-sweep privacy-sweep robustness-bench async-bench compare-dpsgd compare-dp-cost compare-fedavg compare-cnn imagefolder-demo accuracy-seeds check-checkpoint clean

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

## run: the main job: federated LeNet-5 on Fashion-MNIST (10 clients, Dirichlet 0.5, FedAvg, 20 rounds)
run: build
	$(FEDTRAIN) simulate --config experiments/default.yaml --out results/default --overwrite

## train: centralized LeNet-5 on Fashion-MNIST (10 epochs, B=64, lr 0.02, momentum 0.9)
train: build
	@mkdir -p results/train
	$(FEDTRAIN) train --epochs 10 --batch-size 64 --lr 0.02 --momentum 0.9 --summary results/train/summary.json \
		--save results/train/model.safetensors

## federation: a CA, a server and N client processes (default 10) on loopback with mutual TLS, running the default job
## (experiments/default.yaml) to its end; prints its summary (results/federation/)
N ?= 10
federation: build
	scripts/federation.sh $(FEDTRAIN) $(N) results/federation

## bench-transport: one 100 MB update pushed 10 times over loopback through the server's receive path (gRPC in
## 1 MiB chunks, size limit, routing, the reply journal spooled and fsync'd), server and client in separate
## processes: MB/s and the server's peak RSS
bench-transport: deps
	swift build -c release --product bench-transport
	.build/release/bench-transport 100 10

## server-memory: the server's peak RSS over networked jobs whose model is 95 MB (echo clients: 2 of 4 sampled a round,
## then 8 of 8; 3 rounds), and over the first job with LeNet-5
server-memory: build
	scripts/server_memory.sh $(FEDTRAIN) results/server-memory

## compare-federation: round time of 10 echo clients (no training, LeNet-5), fedtrain beside Flower 1.42 in deployment
## mode (SuperLink + 10 SuperNodes + a NumPy ClientApp; installs flwr into .venv on first use)
compare-federation: build
	scripts/federation_overhead.sh $(FEDTRAIN) results/compare-federation/fedtrain
	@[ -x $(PYTHON) ] || python3 -m venv $(VENV)
	@$(PYTHON) -c "import flwr" 2>/dev/null || $(VENV)/bin/pip install -q "flwr==1.42.0" numpy \
		|| { echo "make compare-federation: could not install flwr with pip (is PyPI reachable?)"; exit 1; }
	scripts/flower_echo_bench.sh $(VENV)

## fuzz: libFuzzer on the wire decoders (envelope, update message, task batch), FUZZ_RUNS executions each (default 10
## million); inputs that crash are left in .fuzz/ (replay one: .build/release/fuzz-wire FILE)
FUZZ_RUNS ?= 10000000
fuzz: deps
	swift build -c release --product fuzz-wire --scratch-path .build-fuzz --sanitize fuzzer -Xswiftc -DFUZZING
	@mkdir -p .fuzz
	@for decoder in envelope message batch; do \
		mkdir -p .fuzz/corpus-$$decoder; \
		echo "fuzzing the $$decoder decoder: $(FUZZ_RUNS) runs"; \
		FUZZ_DECODER=$$decoder .build-fuzz/release/fuzz-wire -runs=$(FUZZ_RUNS) -max_len=4096 -print_final_stats=1 \
			-artifact_prefix=.fuzz/$$decoder- .fuzz/corpus-$$decoder 2>&1 | grep -E "^(stat::number_of_executed_units|Done|==|SUMMARY)" \
			|| exit 1; \
	done

## experiment: one experiment, NAME=x runs experiments/x.yaml into results/x/, resuming it if it was interrupted;
## SEED=k overrides the config's seed and writes results/x-seed-k/. A run whose experiments/x.yaml was edited since it
## started is not resumed (fedtrain names the keys that differ); FRESH=1 starts it over.
EXPERIMENT_OUT = results/$(NAME)$(if $(SEED),-seed-$(SEED))
experiment: build
	@test -n "$(NAME)" || { echo "make experiment: NAME is not set (usage: make experiment NAME=<name of experiments/NAME.yaml> [SEED=k] [FRESH=1])"; exit 2; }
	@test -f experiments/$(NAME).yaml || { echo "make experiment: experiments/$(NAME).yaml does not exist"; exit 2; }
	@if [ -z "$(FRESH)" ] && [ -f $(EXPERIMENT_OUT)/checkpoint/checkpoint.json ]; then \
		$(FEDTRAIN) simulate --resume $(EXPERIMENT_OUT) --config experiments/$(NAME).yaml $(if $(SEED),--seed $(SEED)) \
		|| { echo "make experiment: to start $(EXPERIMENT_OUT) over from experiments/$(NAME).yaml: make experiment NAME=$(NAME)$(if $(SEED), SEED=$(SEED)) FRESH=1"; exit 1; }; \
	else \
		$(FEDTRAIN) simulate --config experiments/$(NAME).yaml $(if $(SEED),--seed $(SEED)) --out $(EXPERIMENT_OUT) $(if $(FRESH),--overwrite); \
	fi

## plot: PNG charts (accuracy vs round, accuracy vs cumulative MB uploaded) for NAME="x y ..." (results/x/metrics.jsonl
## ...); installs matplotlib into .venv on first use
plot:
	@test -n "$(NAME)" || { echo 'make plot: NAME is not set (usage: make plot NAME="x y ..." to plot results/x results/y ...)'; exit 2; }
	@for n in $(NAME); do \
		[ -d "results/$$n" ] || { echo "make plot: results/$$n does not exist (make experiment NAME=$$n writes it)"; exit 2; }; \
		[ -f "results/$$n/metrics.jsonl" ] || { echo "make plot: results/$$n/metrics.jsonl does not exist (make experiment NAME=$$n writes it)"; exit 2; }; \
	done
	$(call require_files,plot,scripts/plot.py scripts/script_support.py)
	@[ -x $(PYTHON) ] || python3 -m venv $(VENV)
	@$(PYTHON) -c "import matplotlib" 2>/dev/null || $(VENV)/bin/pip install -q matplotlib \
		|| { echo "make plot: could not install matplotlib with pip (is PyPI reachable?)"; exit 1; }
	$(PYTHON) scripts/plot.py $(foreach n,$(NAME),results/$(n))

NIID_STRATEGIES := fedavg fedprox-0.01 scaffold fednova fedavgm-0.9 fedadam
NIID_PARTITIONS := iid dirichlet-0.5 labels-2 labels-3
# Settings beyond the grid, run on #C=3 only (the partition where the grid's best is closest to the published one)
NIID_EXTRA := niid-fedprox-0.1-labels-3 niid-fedyogi-labels-3 niid-fedyogi-0.02-labels-3 niid-fedadam-0.03-labels-3
# Cells repeated with seeds 1 and 2 (NIID-Bench's init_seed repeats: new partition, initialization and shuffling):
# FedAvg and the best strategy of each partition (the cells the acceptance bars compare), and FedYogi on #C=3 with
# its default server lr, since the best cell there uses a tuned one.
NIID_REPEATS := niid-fedavg-labels-3 niid-fedyogi-0.02-labels-3 niid-fedavg-iid niid-scaffold-iid \
	niid-fedavg-dirichlet-0.5 niid-scaffold-dirichlet-0.5 niid-fedavg-labels-2 niid-fedadam-labels-2 niid-fedyogi-labels-3
NIID_REPEAT_SEEDS := 1 2
## niid-bench: the NIID-Bench Fashion-MNIST grid, cell by cell, then the repeats; finished cells are skipped,
## so it can be stopped and restarted
niid-bench: build
	@for cell in $(foreach s,$(NIID_STRATEGIES),$(foreach p,$(NIID_PARTITIONS),niid-$(s)-$(p))) $(NIID_EXTRA); do \
		if [ -f results/$$cell/summary.json ]; then echo "$$cell: done"; continue; fi; \
		$(MAKE) --no-print-directory experiment NAME=$$cell || exit 1; \
	done
	@for cell in $(NIID_REPEATS); do for seed in $(NIID_REPEAT_SEEDS); do \
		if [ -f results/$$cell-seed-$$seed/summary.json ]; then echo "$$cell seed $$seed: done"; continue; fi; \
		$(MAKE) --no-print-directory experiment NAME=$$cell SEED=$$seed || exit 1; \
	done; done
	python3 scripts/niid_table.py results > results/niid-bench.md
	@cat results/niid-bench.md

COMPRESSION_PARTITIONS := dirichlet-0.5 labels-2
## compression-sweep: every codec of experiments/compression-sweep.txt on Dirichlet 0.5 and labels:2 (30 rounds each),
## then results/compression.md (accuracy, MB up/down, ratios, rounds to the dense bar) and PNGs; finished runs are skipped
compression-sweep: build
	@for p in $(COMPRESSION_PARTITIONS); do \
		grep -v '^#' experiments/compression-sweep.txt | while read -r name flags; do \
			[ -n "$$name" ] || continue; \
			out=results/compression/$$p/$$name; \
			if [ -f $$out/summary.json ]; then echo "$$p $$name: done"; continue; fi; \
			if [ -f $$out/checkpoint/checkpoint.json ]; then $(FEDTRAIN) simulate --resume $$out < /dev/null || exit 1; \
			else $(FEDTRAIN) simulate --config experiments/compression-$$p.yaml $$flags --out $$out < /dev/null || exit 1; fi; \
		done || exit 1; \
	done
	python3 scripts/compression_table.py results/compression > results/compression.md
	@cat results/compression.md
	@if [ -x $(PYTHON) ] && $(PYTHON) -c "import matplotlib" 2>/dev/null; then $(PYTHON) scripts/compression_plot.py results/compression; \
	else echo "compression-sweep: PNG skipped (make plot installs matplotlib into $(VENV))"; fi

## privacy-sweep: accuracy against epsilon on Fashion-MNIST (Dirichlet 0.5, 100 rounds): central DP at 1000 and 100
## clients and local DP at 100 (experiments/privacy-sweep.txt), each beside its non-private run (~20 min on 2 cores);
## then the "Utility" section of results/privacy.md and results/privacy/privacy.png. Finished runs are skipped
privacy-sweep: build
	$(call require_files,privacy-sweep,scripts/privacy_sweep_table.py experiments/privacy-sweep.txt experiments/privacy-100.yaml experiments/privacy-1000.yaml)
	@grep -v '^#' experiments/privacy-sweep.txt | while read -r clients name flags; do \
		[ -n "$$name" ] || continue; \
		out=results/privacy/$$clients/$$name; \
		if [ -f $$out/summary.json ]; then echo "$$clients $$name: done"; continue; fi; \
		if [ -f $$out/checkpoint/checkpoint.json ]; then $(FEDTRAIN) simulate --resume $$out < /dev/null || exit 1; \
		else $(FEDTRAIN) simulate --config experiments/privacy-$$clients.yaml $$flags --out $$out < /dev/null || exit 1; fi; \
	done
	@PY=python3; if [ -x $(PYTHON) ] && $(PYTHON) -c "import matplotlib" 2>/dev/null; then PY=$(PYTHON); \
	else echo "privacy-sweep: PNG skipped (make plot installs matplotlib into $(VENV))"; fi; \
	$$PY scripts/privacy_sweep_table.py results/privacy --into results/privacy.md

## async-bench: synchronous FedAvg (with and without deadline and over-selection), FedBuff over a few K and FedAsync
## (experiments/async-modes.txt) on 100 clients with heavy-tailed speeds (experiments/async-bench.yaml), 3 seeds
## (~40 min on 2 cores), then results/async.md (simulated time and trips to 85%) and results/async/async.png.
## Finished runs are skipped, interrupted ones resumed; subsets: MODES="sync fedbuff-k10" ASYNC_SEEDS="0"
async-bench: build
	$(call require_files,async-bench,scripts/async_bench.sh scripts/async_table.py experiments/async-bench.yaml experiments/async-modes.txt)
	MODES="$(MODES)" SEEDS="$(or $(ASYNC_SEEDS),0 1 2)" scripts/async_bench.sh
	@PY=python3; if [ -x $(PYTHON) ] && $(PYTHON) -c "import matplotlib" 2>/dev/null; then PY=$(PYTHON); \
	else echo "async-bench: PNG skipped (make plot installs matplotlib into $(VENV))"; fi; \
	$$PY scripts/async_table.py results/async > results/async.md

## robustness-bench: every attack of experiments/robustness-attacks.txt x every defense of experiments/robustness-defenses.txt
## on Dirichlet 0.5 and IID (50 clients, 30 rounds, ~90 s a cell on 2 cores: the whole grid takes hours), then
## results/robustness.md and a heatmap PNG per partition. Finished cells are skipped and interrupted ones resumed;
## pick a subset with ATTACKS="ipm-10 alie" DEFENSES="mean centered-clip-b2" PARTITIONS=dirichlet-0.5 ROBUSTNESS_SEEDS="0 1 2"
robustness-bench: build
	$(call require_files,robustness-bench,scripts/robustness_bench.sh scripts/robustness_table.py experiments/robustness-attacks.txt \
		experiments/robustness-defenses.txt experiments/robustness-dirichlet-0.5.yaml experiments/robustness-iid.yaml)
	ATTACKS="$(ATTACKS)" DEFENSES="$(DEFENSES)" PARTITIONS="$(or $(PARTITIONS),dirichlet-0.5 iid)" SEEDS="$(or $(ROBUSTNESS_SEEDS),0)" \
		scripts/robustness_bench.sh
	@PY=python3; if [ -x $(PYTHON) ] && $(PYTHON) -c "import matplotlib" 2>/dev/null; then PY=$(PYTHON); \
	else echo "robustness-bench: PNG skipped (make plot installs matplotlib into $(VENV))"; fi; \
	$$PY scripts/robustness_table.py results/robustness > results/robustness.md
	@cat results/robustness.md

## test: the whole test suite (what CI runs), on the optimized build that `make run` uses (its own
## build folder, so the two do not rebuild each other): the SIMD kernels checked are the ones that
## run, and unoptimized they made the suite take 4.5 minutes instead of one
test: deps
	swift test -c release -Xswiftc -enable-testing --scratch-path .build-test

## bench: the benchmark target (training-step throughput and malloc counts, kernels)
bench: deps
	cd Benchmarks && swift package --allow-writing-to-package-directory benchmark

## compare: this engine beside PyTorch on LeNet-5, same batch sizes and threads, in one run;
## downloads PyTorch (~5 GB) into .venv on first use
compare: build
	$(call require_files,compare,scripts/compare.py $(TORCH_SCRIPTS))
	$(call require_files,compare,$(FASHION_MNIST_FILES),make deps installs dataset-fashion-mnist)
	@if [ ! -x $(PYTHON) ] || ! $(PYTHON) -c "import torch" 2>/dev/null; then \
		python3 -m venv $(VENV) && $(VENV)/bin/pip install -q torch numpy \
		|| { echo "make compare: skipped: could not install PyTorch with pip (is PyPI reachable?)"; exit 0; }; \
	fi; \
	$(PYTHON) scripts/compare.py --fedtrain $(FEDTRAIN)

## compare-dpsgd: example-level DP-SGD on LeNet-5 (one client of 6000 images, lot 64), fedtrain beside Opacus,
## one core each, in one run; installs PyTorch and Opacus into .venv on first use
# fedavg-cnn (McMahan et al.'s CNN, 1.66M parameters) beside PyTorch's nn.Sequential of the same layers,
# on the first 10,000 training images, with each engine's share of the machine's peak FLOP/s
# (measured by scripts/peak_flops.c, chains of fused multiply-adds on every core).
compare-cnn: build
	$(call require_files,compare-cnn,scripts/compare.py scripts/torch_model.py scripts/peak_flops.c $(TORCH_SCRIPTS))
	@cc -O2 -march=native -pthread scripts/peak_flops.c -o .build/peak_flops
	$(call require_files,compare-cnn,$(FASHION_MNIST_FILES),make deps installs dataset-fashion-mnist)
	@if [ ! -x $(PYTHON) ] || ! $(PYTHON) -c "import torch, yaml" 2>/dev/null; then \
		python3 -m venv $(VENV) && $(VENV)/bin/pip install -q torch numpy pyyaml \
		|| { echo "make compare-cnn: skipped: could not install PyTorch with pip (is PyPI reachable?)"; exit 0; }; \
	fi; \
	peak=$$(.build/peak_flops $$(nproc)); echo "peak: $$peak GFLOP/s (scripts/peak_flops.c, $$(nproc) threads)"; \
	$(PYTHON) scripts/compare.py --fedtrain $(FEDTRAIN) --model fedavg-cnn --batches 64 32 --limit 10000 --peak-gflops $$peak

imagefolder-demo: build
	scripts/imagefolder_demo.sh

compare-dpsgd: build
	$(call require_files,compare-dpsgd,scripts/dpsgd_compare.py $(TORCH_SCRIPTS))
	$(call require_files,compare-dpsgd,$(FASHION_MNIST_FILES),make deps installs dataset-fashion-mnist)
	@if [ ! -x $(PYTHON) ] || ! $(PYTHON) -c "import torch, opacus" 2>/dev/null; then \
		python3 -m venv $(VENV) && $(VENV)/bin/pip install -q torch numpy opacus \
		|| { echo "make compare-dpsgd: skipped: could not install PyTorch and Opacus with pip (is PyPI reachable?)"; exit 0; }; \
	fi; \
	$(PYTHON) scripts/dpsgd_compare.py --fedtrain $(FEDTRAIN)

## compare-dp-cost: what central DP costs a round (the 1000-client privacy job, clip 0.5, noise 1), the job with and
## without it round by round in turn in one process (fedtrain privacy cost), 60 rounds of each
compare-dp-cost: build
	$(call require_files,compare-dp-cost,$(FASHION_MNIST_FILES),make deps installs dataset-fashion-mnist)
	$(FEDTRAIN) privacy cost --config experiments/privacy-1000.yaml --rounds 60 --eval-every 1000 --dp central --clip 0.5 --noise-multiplier 1

## compare-fedavg: one FedAvg round (10 IID clients x 6000, E=1, B=32) beside a PyTorch loop (scripts/fedavg_torch.py)
## and Flower (scripts/flower_sim.py); downloads PyTorch (~5 GB) and Flower with Ray into .venv on first use
compare-fedavg: build
	$(call require_files,compare-fedavg,scripts/fedavg_compare.py scripts/fedavg_torch.py scripts/flower_sim.py \
		scripts/flower_client.py $(TORCH_SCRIPTS) experiments/fedavg-iid-round.yaml)
	$(call require_files,compare-fedavg,$(FASHION_MNIST_FILES),make deps installs dataset-fashion-mnist)
	@if [ ! -x $(PYTHON) ] || ! $(PYTHON) -c "import torch" 2>/dev/null; then \
		python3 -m venv $(VENV) && $(VENV)/bin/pip install -q torch numpy \
		|| { echo "make compare-fedavg: skipped: could not install PyTorch with pip (is PyPI reachable?)"; exit 0; }; \
	fi; \
	$(PYTHON) -c "import flwr" 2>/dev/null || $(VENV)/bin/pip install -q "flwr[simulation]" \
		|| echo "make compare-fedavg: Flower not installed; comparing with the PyTorch loop only"; \
	$(PYTHON) scripts/fedavg_compare.py --fedtrain $(FEDTRAIN)

## accuracy-seeds: centralized LeNet-5 final accuracy over SEEDS, fedtrain beside PyTorch (same recipe as make train),
## from each engine's own start and from a shared one; downloads PyTorch (~5 GB) into .venv on first use
SEEDS := 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19
accuracy-seeds: build
	$(call require_files,accuracy-seeds,scripts/accuracy_seeds.py scripts/fedtrain_order.py $(TORCH_SCRIPTS))
	$(call require_files,accuracy-seeds,$(FASHION_MNIST_FILES),make deps installs dataset-fashion-mnist)
	@set -o pipefail; if [ ! -x $(PYTHON) ] || ! $(PYTHON) -c "import torch, safetensors" 2>/dev/null; then \
		python3 -m venv $(VENV) && $(VENV)/bin/pip install -q torch numpy safetensors \
		|| { echo "make accuracy-seeds: skipped: could not install PyTorch with pip (is PyPI reachable?)"; exit 0; }; \
	fi; \
	$(PYTHON) scripts/accuracy_seeds.py --fedtrain $(FEDTRAIN) --seeds $(SEEDS) | tee results/accuracy-seeds.md

## check-checkpoint: CHECKPOINT=file (default results/train/model.safetensors, from make train) loaded into PyTorch's
## LeNet5 (scripts/torch_lenet5.py); downloads PyTorch (~5 GB) into .venv on first use
CHECKPOINT := results/train/model.safetensors
check-checkpoint:
	@test -f $(CHECKPOINT) || { echo "make check-checkpoint: $(CHECKPOINT) does not exist (make train writes it)"; exit 2; }
	$(call require_files,check-checkpoint,scripts/check_checkpoint.py $(TORCH_SCRIPTS))
	$(call require_files,check-checkpoint,$(FASHION_MNIST_FILES),make deps installs dataset-fashion-mnist)
	@if [ ! -x $(PYTHON) ] || ! $(PYTHON) -c "import torch, safetensors" 2>/dev/null; then \
		python3 -m venv $(VENV) && $(VENV)/bin/pip install -q torch numpy safetensors \
		|| { echo "make check-checkpoint: skipped: could not install PyTorch with pip (is PyPI reachable?)"; exit 0; }; \
	fi; \
	$(PYTHON) scripts/check_checkpoint.py $(CHECKPOINT)

clean:
	rm -rf .build .build-test Benchmarks/.build
