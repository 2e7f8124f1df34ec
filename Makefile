# Two commands do all set-up: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
WORKSPACE ?= demo
# The cache folder of workspaces, as hyperrep reads it.
CACHE := $(or $(HYPERREP_CACHE),cache)

.PHONY: run test install install-test chromium demo clean

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed requirements-test.txt
	$(PY) -m pip install --quiet -r requirements-test.txt
	touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test chromium

# Debian's Chromium for the browser test; Playwright drives it and downloads no browser.
chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	fi

demo: install
	$(VENV)/bin/hyperrep demo --workspace $(WORKSPACE)

# Opens an existing workspace as it is. The demo workspace is (re)built until it has embeddings, and so is
# any other workspace that has no zoo yet.
run: install
	@ws="$(CACHE)/$(WORKSPACE)"; \
	if [ -d "$$ws/zoo" ] && { [ "$(WORKSPACE)" != demo ] || [ -d "$$ws/embeddings" ]; }; then \
		echo "opening workspace $$ws as it is"; \
	else \
		$(MAKE) --no-print-directory demo WORKSPACE=$(WORKSPACE); \
	fi
	$(VENV)/bin/streamlit run app.py -- --workspace $(WORKSPACE)

test: install-test
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) .pytest_cache
