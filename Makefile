# The two commands of the README:  make run  (start the product)  and  make test.
VENV ?= .venv
PY := $(VENV)/bin/python
WEB_DEPS := web/node_modules/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

# front-end packages (bpmn-js, htmx, ECharts, bpmn-auto-layout) from the npm registry
$(WEB_DEPS): web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund --loglevel=error
	cd web && npm run --if-present build
	touch $@

install: $(VENV)/.installed $(WEB_DEPS)

run: install
	$(VENV)/bin/tongban serve --demo

# SQLite always; PostgreSQL too when TONGBAN_TEST_POSTGRES_URL is set (CI sets it).
# Browser tests drive Debian's chromium (/usr/bin/chromium; .ci/run installs it).
test: install
	$(PY) -m pytest -n 2

bench: install
	$(PY) bench/bench_engine.py --db both

.PHONY: install run test bench
