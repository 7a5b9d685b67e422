# The two commands of the README:  make run  (start the product)  and  make test.
VENV ?= .venv
PY := $(VENV)/bin/python

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

install: $(VENV)/.installed

run: $(VENV)/.installed
	$(VENV)/bin/tongban serve --demo

# SQLite always; PostgreSQL too when TONGBAN_TEST_POSTGRES_URL is set (CI sets it).
test: $(VENV)/.installed
	$(PY) -m pytest -n 2

bench: $(VENV)/.installed
	$(PY) bench/bench_engine.py --db both

.PHONY: install run test bench
