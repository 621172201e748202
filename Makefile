# adlake: `make demo` and `make test` install whatever is missing, then run.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV := $(PYTHON) -m uv
SETUP_STAMP := $(VENV)/.adlake-setup
APT_PACKAGES := ffmpeg espeak-ng sox fonts-dejavu-core fonts-wqy-microhei postgresql
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
export ADLAKE_HOME ?= $(CURDIR)/.adlake

.PHONY: setup system-deps java python-deps media-sources demo test test-fast bench lint clean up down status screenshot cluster-up cluster-down cluster-status

setup: system-deps java python-deps ## install everything the project needs (idempotent)

system-deps: ## ffmpeg, espeak-ng, sox, a font for the synthetic corpus and one for Chinese subtitles, Postgres for `make up`, via apt
	@missing=""; \
	for pair in ffmpeg:ffmpeg ffprobe:ffmpeg espeak-ng:espeak-ng sox:sox; do \
	  command -v $${pair%%:*} >/dev/null 2>&1 || missing="$$missing $${pair##*:}"; done; \
	[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf ] || missing="$$missing fonts-dejavu-core"; \
	[ -f /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] || missing="$$missing fonts-wqy-microhei"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

java: ## Spark needs Java 17 or newer
	@v=$$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1); \
	if [ -z "$$v" ] || [ "$$v" -lt 17 ]; then \
	  echo "Java 17+ is required by Spark (found: $${v:-none}); trying apt openjdk-17-jre-headless"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq openjdk-17-jre-headless >/dev/null \
	    || { echo "ERROR: install Java 17 (e.g. openjdk-17-jre-headless) and retry"; exit 1; }; \
	fi

python-deps: $(SETUP_STAMP)

# The locked environment (uv.lock). whisperx pins torch 2.8 with its CUDA wheels (~9 GB): cached in .venv
# and in uv's cache, so only the first install pays for it.
$(SETUP_STAMP): uv.lock pyproject.toml
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv || $(PYTHON) -m pip install --quiet --user uv
	$(UV) sync --frozen
	@touch $@

media-sources: setup ## real footage, speech and music for `adlake synth --real`, from Debian packages (not committed)
	$(BIN)/adlake media-sources

demo: setup media-sources ## synthesize a corpus (adlake demo --real 0.5: half of it cut from real recordings), serve it, ingest it through Airflow, show the lake
	ADLAKE_ENV=$${ADLAKE_ENV:-local} $(BIN)/adlake demo

up: setup ## the service stack: Postgres, Airflow (scheduler, dag-processor, api-server, triggerer), MLflow server
	ADLAKE_ENV=$${ADLAKE_ENV:-service} $(BIN)/adlake up

down: ## stop the service stack; no process of it is left
	@if [ -x $(BIN)/adlake ]; then ADLAKE_ENV=$${ADLAKE_ENV:-service} $(BIN)/adlake down; else echo "nothing installed, nothing running"; fi

status:
	ADLAKE_ENV=$${ADLAKE_ENV:-service} $(BIN)/adlake status

cluster-up: setup ## the local cluster: S3 object store (moto), Spark master + 2 workers, Ray head + 1 node
	ADLAKE_ENV=$${ADLAKE_ENV:-cluster.local} $(BIN)/adlake cluster up

cluster-down: ## stop the local cluster; no process of it is left
	@if [ -x $(BIN)/adlake ]; then ADLAKE_ENV=$${ADLAKE_ENV:-cluster.local} $(BIN)/adlake cluster down; else echo "nothing installed, nothing running"; fi

cluster-status:
	ADLAKE_ENV=$${ADLAKE_ENV:-cluster.local} $(BIN)/adlake cluster status

screenshot: ## the Airflow UI of the running stack through headless Chromium: docs/airflow-*.png
	@command -v chromium >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends chromium >/dev/null; }
	ADLAKE_ENV=$${ADLAKE_ENV:-service} $(BIN)/python -m bench.screenshot --path /dags --out docs/airflow-dags.png
	ADLAKE_ENV=$${ADLAKE_ENV:-service} $(BIN)/python -m bench.screenshot --dag ads_features --out docs/airflow-grid.png

test: setup media-sources ## the whole suite (slow tests included)
	ADLAKE_ENV=test $(BIN)/pytest

test-fast: setup
	ADLAKE_ENV=test $(BIN)/pytest -m "not slow"

bench: setup media-sources ## benchmarks, each against a baseline measured in the same run
	ADLAKE_ENV=$${ADLAKE_ENV:-local} $(BIN)/python -m bench

lint: setup ## ruff, including its Airflow rules
	$(BIN)/ruff check .

clean:
	rm -rf .adlake .pytest_cache .ruff_cache
