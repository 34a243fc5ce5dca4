# The README's two commands are `make run` and `make test`; everything else supports them.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PY     := .venv/bin/python
BUF    := node_modules/.bin/buf
URL    ?= http://localhost:8000
# Our Python code: the kit, client, edge, launcher, every service and the tests.
PY_PATHS := kit client envoy launcher services tests
MYPY_PACKAGES = kit/aistack_kit client/aistack_client envoy/aistack_edge launcher/aistack_launcher \
                $(wildcard services/*/aistack_*)

.PHONY: help setup engine-envs gen lint test run health smoke-test envoy-config

help:
	@echo "make run         install what is missing, start every service + Envoy on $(URL)"
	@echo "make test        setup, lint, the whole test suite (what CI runs)"
	@echo "make lint        ruff, mypy, buf lint/breaking, generated-code drift"
	@echo "make engine-envs run/xtts-venv and run/paddle-venv, where the production engines' tests run"
	@echo "make gen         regenerate gen/ (stubs, descriptor set) from proto/"
	@echo "make envoy-config  write envoy/envoy.compose.json and run/envoy.json"
	@echo "make health      GET /api/v1/health through Envoy"
	@echo "make smoke-test  a few real calls through Envoy (REST, gRPC, auth)"

setup:
	bash scripts/setup.sh

gen:
	bash scripts/gen_protos.sh

envoy-config:
	$(PY) -m aistack_edge --target compose --output envoy/envoy.compose.json
	$(PY) -m aistack_edge --target embedded --output run/envoy.json

lint:
	$(PY) -m ruff check $(PY_PATHS)
	$(PY) -m ruff format --check $(PY_PATHS)
	$(PY) -m mypy $(MYPY_PACKAGES)
	@# Each test area on its own, with its folders on the path as pytest puts them (helpers such as
	@# tests/asr/asr_testkit.py are imported as top-level modules, and every area has a conftest).
	@for area in $$(find tests -mindepth 1 -maxdepth 1 -type d ! -name __pycache__ | sort); do \
	  echo "mypy $$area"; \
	  MYPYPATH=$$(find "$$area" -name '*.py' -printf '%h\n' | sort -u | paste -sd:) $(PY) -m mypy "$$area" || exit 1; \
	done
	$(BUF) lint
	@if git rev-parse -q --verify HEAD~1 >/dev/null; then \
	  echo "buf breaking --against .git#ref=HEAD~1"; \
	  $(BUF) breaking --against '.git#ref=HEAD~1'; \
	else echo "buf breaking: skipped (no previous commit)"; fi
	@# Generated files must match their sources: stubs from proto/, the compose Envoy config from the catalog.
	bash scripts/gen_protos.sh >/dev/null
	$(PY) -m aistack_edge --target compose --output envoy/envoy.compose.json
	@git diff --exit-code --stat -- gen/ envoy/envoy.compose.json || { \
	  echo "generated files drifted: run 'make gen envoy-config' and commit the result" >&2; exit 1; }
	@untracked=$$(git ls-files --others --exclude-standard -- gen/); if [[ -n "$$untracked" ]]; then \
	  echo "untracked generated files (commit them): $$untracked" >&2; exit 1; fi

# The production engines (XTTS-v2, PaddleOCR) bring stacks that conflict with .venv (torch, paddle):
# each gets an environment of its own under run/, where their adapters' tests run the real libraries.
engine-envs: setup
	PYTHON=$$($(PY) -c 'import sys; print(sys._base_executable)') bash services/tts/setup_xtts_env.sh
	PYTHON=$$($(PY) -c 'import sys; print(sys._base_executable)') bash services/ocr/setup_paddle_env.sh

test: setup lint engine-envs
	$(PY) -m pytest tests

run: setup
	$(PY) -m aistack_launcher

health:
	@curl -sS --fail-with-body $(URL)/api/v1/health; echo

# The token: AISTACK_TOKEN, else the first of API_TOKENS, else run/token written by `make run`.
smoke-test:
	$(PY) -m aistack_launcher.smoke --url $(URL)
