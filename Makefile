# The two set-up commands of the README: `make run` and `make test`.
# Both install what they need: a pinned uv in .tools/, the locked deps in .venv/.
UV_VERSION := 0.13.9
UV := .tools/bin/uv
VENV := .venv

.PHONY: run test lint format bench sync clean

$(UV):
	python3 -m venv .tools
	.tools/bin/pip install --quiet "uv==$(UV_VERSION)"

$(VENV)/.synced: $(UV) uv.lock pyproject.toml shared/pyproject.toml $(wildcard services/*/pyproject.toml)
	$(UV) sync --frozen --all-packages
	touch $@

sync: $(VENV)/.synced

run: sync  ## start the whole system in one process with embedded defaults
	$(VENV)/bin/switchboard run all

test: sync  ## run the whole test suite
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/pytest $(PYTEST_ARGS)

lint: sync
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: sync
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: sync  ## push calls through the multi-process pipeline on RabbitMQ
	$(VENV)/bin/python bench/pipeline.py

clean:
	rm -rf .venv .tools .switchboard .pytest_cache
