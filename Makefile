# mailport — the two commands a newcomer needs are `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-dev
RUNSTAMP := $(VENV)/.installed-run

.PHONY: run test lint fmt typecheck pytest sysdeps venv clean bench

# The service's own dependencies only (what `make run` needs: quick on a fresh machine).
$(RUNSTAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "mailport needs Python >= 3.11")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -e .
	@touch $(RUNSTAMP)

# Plus the developer tools and test dependencies (what `make test` needs).
$(STAMP): $(RUNSTAMP)
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

## sysdeps: Debian packages the test bed needs (Dovecot, Postfix, OpenSSL …), installed when missing
sysdeps:
	@bash scripts/install-system-deps.sh

## run: install and start the service on SQLite with the web wizard (http://127.0.0.1:8025)
run: $(RUNSTAMP)
	$(BIN)/mailport serve

## test: install everything, then lint, type-check and run the whole suite
test: sysdeps $(STAMP) lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

fmt: $(STAMP)
	$(BIN)/ruff check --fix src tests bench
	$(BIN)/ruff format src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

# The tests mostly wait on servers, so 4 workers on 2 cores finish in a fraction of the time.
# Each worker has its own servers and databases; tests/fixtures/parallel.py keeps tests that share
# a module or package fixture on one worker and runs the time-bounded (`serial`) ones alone.
# PYTEST_WORKERS=0 runs everything in one process; PYTEST_ARGS='-m "not slow"' leaves out the slow tests.
# Measured on the 2-core CI machine (issue 17, both under other load): 6 workers 9.0 min, 4 workers
# 11.5 min. 4 stays the default until CI's fs.inotify.max_user_instances is known to be raised:
# every idling Dovecot session holds an inotify instance (52 at once were seen with 4 workers).
PYTEST_WORKERS ?= 4

# --durations: a run's log names its 25 slowest steps, the ones nearest their time bounds.
pytest: $(STAMP)
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadgroup --durations=25 $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
