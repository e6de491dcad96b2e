# Every target bootstraps .venv from nothing (python3 -m venv + pip) on first use.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test test-fast bench clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/perpdex sim run default --out out/sim/default

test: $(STAMP)
	$(PY) -m pytest -n 2 -q

test-fast: $(STAMP)
	$(PY) -m pytest -n 2 -q -m "not slow"

bench: $(STAMP)
	$(VENV)/bin/perpdex bench book
	$(VENV)/bin/perpdex bench apply
	$(VENV)/bin/perpdex bench margin
	$(VENV)/bin/perpdex bench liquidation
	$(VENV)/bin/perpdex bench store
	$(VENV)/bin/perpdex bench sim
	$(VENV)/bin/perpdex bench rollup
	$(VENV)/bin/perpdex bench risk

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .hypothesis
