# rollbot — the same targets locally and in CI.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: venv demo test test-fast check bench drill peers image version lock clean

venv: $(STAMP)

# requirements.lock: the runtime set (what an image installs); requirements-dev.lock: the
# same pins plus the test and lint tools (compiled with -c requirements.lock). Both hashed.
$(STAMP): requirements.lock requirements-dev.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements-dev.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

## Run the whole thing locally against bot/sim (Ctrl-C stops it). ARGS go to `rollbot demo`:
## make demo ARGS="--ui-port 0 --speed 120"
demo: venv
	$(BIN)/rollbot demo $(ARGS)

## Unit + integration + e2e + security tests (benchmarks excluded), on TEST_WORKERS
## processes (pytest-xdist): most tests wait on servers, so 3 workers fit 2 cores.
TEST_WORKERS ?= 3
test: venv
	$(BIN)/python -m pytest -n $(TEST_WORKERS) $(PYTEST_ARGS)

## The quick local loop: unit and integration tests only.
test-fast: venv
	$(BIN)/python -m pytest -n $(TEST_WORKERS) tests/unit tests/integration $(PYTEST_ARGS)

## Lint, types and layer contracts.
check: venv
	$(BIN)/ruff check bot tests
	$(BIN)/ruff format --check bot tests
	$(BIN)/mypy
	$(BIN)/lint-imports

## Benchmarks (not part of make test): prints figures and ratios against a baseline.
bench: venv
	$(BIN)/python -m pytest tests/bench -p no:randomly -s -q $(PYTEST_ARGS)

## The real Unleash server used by the Tier 2 tests (npm; needs Node >= 20). Without it
## those tests skip locally (CI installs it and requires it).
peers:
	npm ci --no-audit --no-fund --ignore-scripts --prefix tests/peers/unleash

## One headless drill (`rollbot drill --help` lists them): make drill DRILL=slo-alert ARGS="--speed 600"
DRILL ?= tier1-abort
drill: venv
	$(BIN)/rollbot drill $(DRILL) $(ARGS)

## The container image (Dockerfile), tagged $(IMAGE):<the version from git>, with buildah if it
## is installed, else docker. A tag cannot hold '+', so 0.1.dev362+g262b0b0d3 is tagged
## 0.1.dev362-g262b0b0d3. BASE=… builds on another base image; IMAGE_FLAGS=… go to the
## builder as they are (.ci/image: its storage, --isolation chroot, the CA bundle mount).
IMAGE       = rollbot
VERSION     = $(shell $(BIN)/python -m setuptools_scm)
IMAGE_TAG   = $(subst +,-,$(VERSION))
BUILDER     = $(if $(shell command -v buildah),buildah bud,docker build)
image: venv
	$(BUILDER) $(IMAGE_FLAGS) $(if $(BASE),--build-arg BASE=$(BASE)) \
		--build-arg VERSION=$(VERSION) --build-arg REVISION=$$(git rev-parse HEAD) \
		$(if $(SOURCE),--build-arg SOURCE=$(SOURCE)) -t $(IMAGE):$(IMAGE_TAG) .

## The version setuptools-scm derives from git (what `rollbot --version` says once installed).
version: venv
	@echo $(VERSION)

## Re-pin both locks after a change to pyproject.toml's dependencies (needs uv).
lock:
	uv pip compile pyproject.toml --python-version 3.11 --generate-hashes -o requirements.lock
	uv pip compile pyproject.toml --extra dev --python-version 3.11 --generate-hashes \
		-c requirements.lock -o requirements-dev.lock

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache rollbot-demo.db
