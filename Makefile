# The two set-up commands of the README: `make run` and `make test`.
# Both install what they need: a pinned uv in .tools/, the locked deps in .venv/.
UV_VERSION := 0.13.9
UV := .tools/bin/uv
VENV := .venv

.PHONY: run test test-tools lint format bench sync clean prometheus-rule

$(UV):
	python3 -m venv .tools
	.tools/bin/pip install --quiet "uv==$(UV_VERSION)"

$(VENV)/.synced: $(UV) uv.lock pyproject.toml shared/pyproject.toml $(wildcard services/*/pyproject.toml) testing/pyproject.toml
	$(UV) sync --frozen --all-packages
	touch $@

sync: $(VENV)/.synced

run: sync  ## start the whole system in one process with embedded defaults
	$(VENV)/bin/switchboard run all

# Programs the tests drive that are not Python packages, from Debian when missing:
# chromium (the browser tests, through Playwright) and promtool (the alert rules).
test-tools:
	@if [ ! -x /usr/bin/chromium ] || ! command -v promtool >/dev/null 2>&1; then \
		apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			chromium prometheus; \
	fi

test: sync test-tools  ## run the whole test suite
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/pytest $(PYTEST_ARGS)

lint: sync  ## ruff and the type checker (mypy --strict, configured in pyproject.toml)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: sync
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

prometheus-rule: sync  ## render deploy/prometheus/rules.yaml into the kustomize base
	$(VENV)/bin/python -m deploy.prometheus.prometheus_rule

bench: sync  ## push calls through the multi-process pipeline on RabbitMQ
	$(VENV)/bin/python -m bench.pipeline $(BENCH_ARGS)

clean:
	rm -rf .venv .tools .switchboard .pytest_cache
