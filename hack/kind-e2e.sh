#!/usr/bin/env bash
# The end-to-end tests on kind, for machines with Docker (ours have none; see the README, which also says what
# hack/kind/docker and hack/tools/kind are for and what is left before this runs here):
# a kind cluster from kind-config.yaml, the images built with Docker and loaded,
# the operator installed with the chart, then tests/e2e against that cluster.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

name=${KIND_CLUSTER:-initpipeline}
kubeconfig=$(mktemp)
kind create cluster --name "$name" --config "$REPO_ROOT/kind-config.yaml"
kind get kubeconfig --name "$name" >"$kubeconfig"
docker build -t "$PROJECT_IMAGE" "$REPO_ROOT"
docker build -t "$BUSYBOX_IMAGE" -f "$HACK_DIR/images/busybox.Dockerfile" "$HACK_DIR/images"
kind load docker-image --name "$name" "$PROJECT_IMAGE" "$BUSYBOX_IMAGE"
KUBECONFIG=$kubeconfig bash "$HACK_DIR/install-operator.sh"
# The tests' PostgreSQL runs on this host; kind's nodes reach it through the Docker network's gateway.
gateway=$(docker network inspect kind -f '{{(index .IPAM.Config 0).Gateway}}')
INITPIPELINE_E2E_KUBECONFIG=$kubeconfig INITPIPELINE_E2E_HOST_IP=$gateway \
  "$CACHE_DIR/venv/bin/pytest" -ra "$REPO_ROOT/tests/e2e"
