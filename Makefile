# rollbot — the same targets locally and in CI.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: venv deploy-tools demo test test-fast check bench drill peers image version lock clean

venv: $(STAMP)

# requirements.lock: the runtime set (what an image installs); requirements-dev.lock: the
# same pins plus the test and lint tools (compiled with -c requirements.lock). Both hashed.
$(STAMP): requirements.lock requirements-dev.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements-dev.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

# The tools the deploy/ tests run on the rendered manifests (checkov, kubernetes-validate),
# in a venv of their own: checkov's dependencies would clash with requirements-dev.lock.
# tests/unit/deploy finds them in $(DEPLOY_VENV)/bin (or $$ROLLBOT_DEPLOY_TOOLS).
DEPLOY_VENV  ?= .venv-deploy
DEPLOY_STAMP := $(DEPLOY_VENV)/.installed

deploy-tools: $(DEPLOY_STAMP)

$(DEPLOY_STAMP): requirements-deploy.lock
	@test -x $(DEPLOY_VENV)/bin/python || $(PYTHON) -m venv $(DEPLOY_VENV)
	$(DEPLOY_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(DEPLOY_VENV)/bin/python -m pip install --quiet --require-hashes -r requirements-deploy.lock
	@touch $(DEPLOY_STAMP)

## Run the whole thing locally against bot/sim (Ctrl-C stops it). ARGS go to `rollbot demo`:
## make demo ARGS="--ui-port 0 --speed 120"
demo: venv
	$(BIN)/rollbot demo $(ARGS)

## Unit + integration + e2e + security tests (benchmarks excluded), on TEST_WORKERS
## processes (pytest-xdist): most tests wait on servers, so 3 workers fit 2 cores.
TEST_WORKERS ?= 3
test: venv deploy-tools
	$(BIN)/python -m pytest -n $(TEST_WORKERS) $(PYTEST_ARGS)

## The quick local loop: unit and integration tests only.
test-fast: venv deploy-tools
	$(BIN)/python -m pytest -n $(TEST_WORKERS) tests/unit tests/integration $(PYTEST_ARGS)

## Lint, types and layer contracts.
check: venv
	$(BIN)/ruff check bot tests
	$(BIN)/ruff format --check bot tests
	$(BIN)/mypy
	$(BIN)/lint-imports

## Benchmarks (not part of make test): each writes its figures to bench-results.json and
## its charts to docs/bench/; then one table of every figure, its target and its ratio to
## the baseline of the same run, also written into README.md's Performance section.
bench: venv
	$(BIN)/python -m pytest tests/bench -p no:randomly -s -q $(PYTEST_ARGS)
	$(BIN)/python -m tests.bench.report --readme

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

## Re-pin the locks after a change to pyproject.toml's dependencies or requirements-deploy.in
## (needs uv).
lock:
	uv pip compile pyproject.toml --python-version 3.11 --generate-hashes -o requirements.lock
	uv pip compile pyproject.toml --extra dev --python-version 3.11 --generate-hashes \
		-c requirements.lock -o requirements-dev.lock
	uv pip compile requirements-deploy.in --python-version 3.11 --generate-hashes \
		-o requirements-deploy.lock

clean:
	rm -rf $(VENV) $(DEPLOY_VENV) .pytest_cache .mypy_cache .ruff_cache rollbot-demo.db
