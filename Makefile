# The README's two commands: `make study` (the default study on the embedded corpus) and `make test`.
# Each creates .venv and installs what is missing first.  On a GPU machine, use the usual torch:
#   make study TORCH_SPEC=torch
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: study test smoke report install clean-cache

study: $(STAMP)
	$(PY) -m study run --preset default

test: $(STAMP)
	$(PY) -m pytest -q

smoke: $(STAMP)
	$(PY) -m study run --preset smoke

report: $(STAMP)
	$(PY) -m study report

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m pip install --quiet --no-deps musicnn || echo "musicnn data not installed: pretrained taggers unavailable"
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (study)" >/dev/null
	touch $(STAMP)

clean-cache:
	rm -rf cache
