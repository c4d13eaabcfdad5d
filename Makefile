# AgentFlow. `make run` starts it on embedded defaults; `make test` runs every test.
PY := .venv/bin/python
PORT ?= 8000
export PYTHON

.PHONY: run test lint bench worker migrate install install-dev

run: install  ## API, admin and a worker on 127.0.0.1:$(PORT), with a demo tenant and key
	@scripts/serve.sh $(PORT)

test: install-dev  ## install what the tests need, then run them all (PostgreSQL + Redis)
	@$(PY) scripts/run_tests.py $(ARGS)

lint: install-dev
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy .

bench: install-dev
	@for f in bench/bench_*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

worker: install
	$(PY) manage.py runworker

migrate: install
	$(PY) manage.py migrate

install:
	@scripts/bootstrap.sh requirements.lock

install-dev:
	@scripts/bootstrap.sh requirements-dev.lock sync

lock:  ## re-pin after editing pyproject.toml
	.tools/bin/uv pip compile pyproject.toml --universal --python-version 3.12 --generate-hashes --no-header -q -o requirements.lock
	.tools/bin/uv pip compile pyproject.toml --extra dev --universal --python-version 3.12 --generate-hashes --no-header -q -o requirements-dev.lock
