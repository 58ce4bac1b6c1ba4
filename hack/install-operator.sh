#!/usr/bin/env bash
# Installs (or upgrades) the operator into the cluster of $KUBECONFIG with the
# project's Helm chart, and waits until it runs. Extra arguments go to helm.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

: "${KUBECONFIG:=$KUBECONFIG_FILE}"
export KUBECONFIG
NAMESPACE=${INITPIPELINE_NAMESPACE:-initpipeline-system}
# A rebuilt image keeps its tag; this annotation rolls the operator onto it.
image_id=$(buildah_ images --no-trunc --format '{{.ID}}' "$PROJECT_IMAGE" 2>/dev/null | head -1 | cut -c1-63 || true)
# helm upgrade never touches a chart's CRDs: apply the CRD itself, so that a changed schema arrives too
"$BIN_DIR/kubectl" apply --server-side --force-conflicts -f "$REPO_ROOT/crds/" >/dev/null
log "installing the operator with Helm into namespace $NAMESPACE"
"$BIN_DIR/helm" upgrade --install initpipeline "$REPO_ROOT/deploy/initpipeline" --namespace "$NAMESPACE" \
  --create-namespace --wait --timeout 180s \
  --set-string "podAnnotations.initpipeline\.dev/image-id=${image_id:-none}" "$@" >/dev/null
"$BIN_DIR/kubectl" -n "$NAMESPACE" rollout status deployment/initpipeline --timeout=120s >/dev/null
log "operator is running"
