# The two commands a newcomer needs (both set everything up on a fresh machine):
#   make quickstart   run the platform end to end, offline
#   make test         lint, contract checks and the whole test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# The environment is rebuilt whenever the project's dependencies change.
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

.PHONY: quickstart test lint protos setup clean bench

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first, pinned: a bare `torch` requirement would pull a multi-GB CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -c constraints.txt -e ".[dev]"
	rm -f $(VENV)/.installed-*
	touch $@

setup: $(STAMP)

quickstart: $(STAMP)
	$(BIN)/tuneforge quickstart

lint: $(STAMP)
	$(BIN)/python tools/protos.py --check
	cd protos && npx --yes @bufbuild/buf lint
	$(BIN)/ruff check .
	# The walls between the services, and the size of modules and functions.
	$(BIN)/lint-imports
	$(BIN)/python tools/check_structure.py

# PostgreSQL tests run when TUNEFORGE_TEST_POSTGRES_URL is set; as root, `make test` starts a local
# server (installing it from Debian's packages if needed) and sets it.
test: lint
	@if [ -z "$$TUNEFORGE_TEST_POSTGRES_URL" ] && [ "$$(id -u)" = 0 ]; then \
		url=$$(tools/start_postgres.sh) || { echo "PostgreSQL could not be started" >&2; exit 1; }; \
		export TUNEFORGE_TEST_POSTGRES_URL=$$url; \
	fi; \
	$(BIN)/python -m pytest -q --durations=15

protos: $(STAMP)
	$(BIN)/python tools/protos.py

bench: $(STAMP)
	$(BIN)/python bench/registry_throughput.py
	$(BIN)/python bench/data_ingest.py
	$(BIN)/python bench/near_dedup.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
