# Two commands on a fresh machine: `make demo` and `make test`. Both build .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Our packages' bytecode, written ahead: where PYTHONDONTWRITEBYTECODE is set (as on these machines)
# Python never writes it, and every process (each served flow run, each CLI call) compiled every
# module again, half a second each. Only what changed since is compiled again.
CODE := app connectors demo deployments flows procore_sync sandbox tasks bench tests

.PHONY: demo test install bytecode bench screenshots clean

$(STAMP): pyproject.toml
	@echo "setting up $(VENV) (first run only)..." >&2
	@$(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install --quiet --upgrade pip >&2
	@$(BIN)/pip install --quiet -e ".[dev]" >&2
	@touch $(STAMP)

install: $(STAMP)

bytecode: $(STAMP)
	@$(BIN)/python -m compileall -q $(CODE) >/dev/null

demo: bytecode
	@$(BIN)/procore-sync demo $(ARGS)

test: bytecode
	@$(BIN)/lint-imports --no-cache --no-logo  # the layers (pyproject.toml): a back-arrow fails here
	@$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	@$(BIN)/python bench/vendors_bulk.py
	@$(BIN)/python bench/inbound.py
	@$(BIN)/python bench/uploads.py
	@$(BIN)/python bench/quota.py
	@$(BIN)/python bench/chaos.py

# Refresh the README's screenshots of the Prefect UI (needs Debian's chromium).
screenshots: $(STAMP)
	@SCREENSHOTS_DIR=docs/screenshots $(BIN)/python -m pytest -q tests/test_demo.py

clean:
	rm -rf $(VENV) .procore-sync .pytest_cache
