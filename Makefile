# The two commands a newcomer needs (both set everything up on a fresh machine):
#   make quickstart   run the platform end to end, offline
#   make test         lint, contract checks and the whole test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# The environment is rebuilt whenever the project's dependencies change.
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

.PHONY: quickstart test lint protos setup clean bench console

# The browser console: npm packages from the registry (package-lock.json), then a Vite build that
# the console process serves. Rebuilt when its sources change.
CONSOLE_SOURCES := $(shell find console/src console/index.html console/vite.config.ts console/tsconfig.json -type f 2>/dev/null)
console/node_modules/.package-lock.json: console/package.json console/package-lock.json
	cd console && npm ci --no-audit --no-fund --loglevel=error

console/dist/index.html: console/node_modules/.package-lock.json $(CONSOLE_SOURCES)
	cd console && npm run build --silent

console: console/dist/index.html

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first, pinned: a bare `torch` requirement would pull a multi-GB CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -c constraints.txt -e ".[dev]"
	rm -f $(VENV)/.installed-*
	touch $@

setup: $(STAMP)

quickstart: $(STAMP) console
	$(BIN)/tuneforge quickstart

lint: $(STAMP) console/node_modules/.package-lock.json
	$(BIN)/python tools/protos.py --check
	cd protos && npx --yes @bufbuild/buf lint
	# The console's TypeScript: generated from the same protos (up to date), and type-checked.
	cd console && rm -rf .gen-check && npx buf generate --template buf.gen.yaml -o .gen-check \
		&& diff -r .gen-check/src/gen src/gen && rm -rf .gen-check && npm run typecheck --silent
	$(BIN)/ruff check .
	# The walls between the services, and the size of modules and functions.
	$(BIN)/lint-imports
	$(BIN)/python tools/check_structure.py

# PostgreSQL tests run when TUNEFORGE_TEST_POSTGRES_URL is set; as root, `make test` starts a local
# server (installing it from Debian's packages if needed) and sets it.
test: lint console
	@if [ "$$(id -u)" = 0 ]; then tools/ensure_chromium.sh > /dev/null; fi
	@if [ -z "$$TUNEFORGE_TEST_POSTGRES_URL" ] && [ "$$(id -u)" = 0 ]; then \
		url=$$(tools/start_postgres.sh) || { echo "PostgreSQL could not be started" >&2; exit 1; }; \
		export TUNEFORGE_TEST_POSTGRES_URL=$$url; \
	fi; \
	$(BIN)/python -m pytest -q --durations=15

protos: $(STAMP) console/node_modules/.package-lock.json
	$(BIN)/python tools/protos.py
	cd console && npm run gen --silent

bench: $(STAMP)
	$(BIN)/python bench/registry_throughput.py
	$(BIN)/python bench/data_ingest.py
	$(BIN)/python bench/near_dedup.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache console/node_modules console/dist
