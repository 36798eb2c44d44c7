# The README's two commands: `make study` (the default study on the embedded corpus) and `make test`.
# Each creates .venv and installs what is missing first.  On a GPU machine, use the usual torch:
#   make study TORCH_SPEC=torch
# The install stamp is named after TORCH_SPEC, so another spec installs again, and torch itself is
# reinstalled when the spec differs from the one .venv was installed with (pip would otherwise keep a
# CPU build that satisfies a plain `torch`).  Every run first prints the device it will use.
PYTHON ?= python3
VENV ?= .venv
DEFAULT_TORCH_SPEC := torch==2.13.0
TORCH_SPEC ?= $(DEFAULT_TORCH_SPEC)
PY := $(VENV)/bin/python
TORCH_SPEC_FILE := $(VENV)/.torch-spec
STAMP := $(VENV)/.installed-$(shell printf '%s' '$(TORCH_SPEC)' | cksum | cut -d ' ' -f 1)

.PHONY: study test smoke report install device clean-cache

study: $(STAMP) device
	$(PY) -m study run --preset default

test: $(STAMP)
	$(PY) -m pytest -q

smoke: $(STAMP) device
	$(PY) -m study run --preset smoke

report: $(STAMP)
	$(PY) -m study report

install: $(STAMP)

device: $(STAMP)
	@$(PY) -m study.device

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	@installed=$$(cat $(TORCH_SPEC_FILE) 2>/dev/null || echo '$(DEFAULT_TORCH_SPEC)'); \
	if [ "$$installed" != '$(TORCH_SPEC)' ]; then \
		echo "TORCH_SPEC changed ($$installed -> $(TORCH_SPEC)): reinstalling torch"; \
		$(PY) -m pip uninstall --quiet --yes torch; \
	fi
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m pip install --quiet --no-deps musicnn || echo "musicnn data not installed: pretrained taggers unavailable"
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (study)" >/dev/null
	printf '%s\n' '$(TORCH_SPEC)' > $(TORCH_SPEC_FILE)
	rm -f $(VENV)/.installed $(VENV)/.installed-*
	touch $@

clean-cache:
	rm -rf cache
