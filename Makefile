# The two commands of the README:
#   make demo   bring up the local cluster, install the operator with Helm, run the demo pipeline
#   make test   everything: lint, type checks, unit and step tests, end-to-end tests on the cluster
CACHE ?= $(or $(INITPIPELINE_CACHE),$(HOME)/.cache/initpipeline)
VENV := $(CACHE)/venv
BIN := $(CACHE)/bin
PYTEST_ARGS ?=

.PHONY: demo test deps tools migration-tools unit-lowest constraints images cluster-up cluster-down cluster-status install lint unit e2e \
        bench bench-operator sync-crd manifests kind-e2e clean e2e-matrix

demo:
	bash hack/demo.sh

# The harness test first, on its own: it takes the local cluster down and up again.
test: deps tools migration-tools lint unit-lowest
	bash hack/cluster.sh up
	$(VENV)/bin/pytest -ra $(PYTEST_ARGS) tests/harness
	$(VENV)/bin/pytest -ra $(PYTEST_ARGS) tests --ignore=tests/harness

deps:
	bash hack/install-deps.sh

tools:
	bash hack/build-tools.sh

# golang-migrate, dbmate and Flyway, which the migration step's tests run against our runner.
migration-tools:
	bash hack/migration-tools.sh

images: cluster-up

cluster-up:
	bash hack/cluster.sh up

cluster-down:
	bash hack/cluster.sh down

cluster-status:
	bash hack/cluster.sh status

install:
	bash hack/install-operator.sh

lint: deps tools
	$(VENV)/bin/ruff check operator tests bench
	$(VENV)/bin/mypy
	$(BIN)/helm lint --strict deploy/initpipeline
	shellcheck -x -P SCRIPTDIR hack/*.sh hack/kind/*.sh hack/kind/shim/*

# The unit tests with every dependency at the lowest version setup.cfg allows.
unit-lowest:
	bash hack/unit-lowest.sh

# constraints.txt anew: the newest versions setup.cfg allows today (commit it with the tests passing).
constraints:
	bash hack/update-constraints.sh

# Fast checks without the cluster (tests/deploy, which needs Helm, runs in make test).
unit: deps migration-tools
	$(VENV)/bin/pytest -ra $(PYTEST_ARGS) tests/unit tests/steps

e2e: deps tools cluster-up
	$(VENV)/bin/pytest -ra $(PYTEST_ARGS) tests/e2e

# The end-to-end suite on each Kubernetes minor of hack/versions.env, the cluster made anew for each
# (E2E_MINORS="1.35 1.37" picks some); prints a table of the results.
E2E_MINORS ?=
e2e-matrix: deps tools
	PYTEST_ARGS="$(PYTEST_ARGS)" bash hack/e2e-matrix.sh $(E2E_MINORS)

bench: deps
	$(VENV)/bin/python bench/wait_benchmark.py
	$(VENV)/bin/python bench/lock_benchmark.py

# The operator's latency, scale, memory and API traffic on the local cluster (about 10 minutes).
BENCH_ARGS ?=
bench-operator: deps tools cluster-up
	bash hack/install-operator.sh
	KUBECONFIG=$(CACHE)/cluster/kubeconfig $(VENV)/bin/python bench/operator_benchmark.py $(BENCH_ARGS)

# crds/ is the source; the chart ships a copy and deploy/manifests is rendered from the chart.
sync-crd:
	cp crds/*.yaml deploy/initpipeline/crds/
	cp crds/initpipelines.initpipeline.dev.yaml operator/initpipeline/spec/

manifests: sync-crd tools
	bash hack/render-manifests.sh > deploy/manifests/initpipeline.yaml

# The end-to-end tests on a kind cluster (see the README): images built here by default,
# KIND_IMAGES=public pulls kind's node image and the public Python base instead.
kind-e2e: deps tools
	PYTEST_ARGS="$(PYTEST_ARGS)" bash hack/kind-e2e.sh

clean: cluster-down
