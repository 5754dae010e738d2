# The two commands a new user needs are `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install run test lint schema bench clean

$(BIN)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is required")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

install: $(BIN)/.installed

# Install, migrate, seed and serve (GraphiQL at http://127.0.0.1:8000/graphql).
run: install
	$(BIN)/questline migrate
	$(BIN)/questline seed
	$(BIN)/questline serve --no-migrate --host $${HOST:-127.0.0.1} --port $${PORT:-8000}

# Install and run lint plus the whole test suite on the backend DATABASE_URL/REDIS_URL name
# (SQLite + in-process pub/sub when unset).
test: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check app models schema resolvers tests bench
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format app models schema resolvers tests bench

schema: install
	$(BIN)/questline export-schema

clean:
	rm -rf $(VENV) data .pytest_cache .ruff_cache
