# The two commands a newcomer needs: `make serve` and `make test`. Each installs what is missing.
VENV ?= .venv
BIN := $(VENV)/bin
PYTHON ?= python3

.PHONY: install docker images image browser serve test lint bench bench-short bench-sessions soak clean

# The service, and beside it the client, a distribution of its own (service/client/).
$(BIN)/sandbox: pyproject.toml service/client/pyproject.toml
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || \
	  (apt-get update -q && apt-get install -y -q python3-venv && $(PYTHON) -m venv $(VENV))
	$(BIN)/pip install -q -e '.[dev]' -e 'service/client[progress]'
	@touch $@

install: $(BIN)/sandbox

docker:
	@deploy/local/ensure-docker.sh

images: docker
	@sandbox_images/build.sh

# The service's own images (API + worker, Redis, proxy) for deploy/compose.yaml and Kubernetes.
image: docker
	@deploy/build-images.sh

serve: install images
	@deploy/local/serve.sh

lint: install
	$(BIN)/ruff check .

# Debian's chromium, for the dashboard's browser test.
browser:
	@test -x /usr/bin/chromium || (apt-get update -q && apt-get install -y -q chromium)

test: install images lint browser
	$(BIN)/pytest -q $(PYTEST_ARGS)

bench: install images
	$(BIN)/python -m tests.bench $(BENCH_ARGS)

bench-short: install images
	$(BIN)/python -m tests.bench --short $(BENCH_ARGS)

bench-sessions: install images
	$(BIN)/python -m tests.bench.sessions $(BENCH_ARGS)

DURATION ?= 600
soak: install images
	$(BIN)/python -m tests.bench.soak --duration $(DURATION) $(SOAK_ARGS)

clean:
	rm -rf .run .pytest_cache .ruff_cache
