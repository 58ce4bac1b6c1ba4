#!/usr/bin/env bash
# Runs the end-to-end suite (tests/e2e) on the local cluster at each Kubernetes minor given (default: every
# one in versions.env), one after the other: the cluster is made anew for each. Prints a table of the results
# (passed, failed, minutes) and keeps each run's pytest output in $CACHE_DIR/e2e-matrix/<minor>.log.
# `make e2e-matrix [E2E_MINORS="1.35 1.37"]`.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

minors=("$@")
# shellcheck disable=SC2206  # a space-separated list
((${#minors[@]})) || minors=($KUBERNETES_MINORS)
out=$CACHE_DIR/e2e-matrix
mkdir -p "$out"
PYTEST=${PYTEST:-$CACHE_DIR/venv/bin/pytest}
read -r -a pytest_args <<<"${PYTEST_ARGS:-}"
rows=()
failed=0
for minor in "${minors[@]}"; do
  log "Kubernetes $minor: the cluster, then the e2e suite (output in $out/$minor.log)"
  begun=$SECONDS
  if KUBERNETES_VERSION=$minor bash "$HACK_DIR/cluster.sh" up >"$out/$minor.log" 2>&1 \
      && (cd "$REPO_ROOT" && KUBERNETES_VERSION=$minor "$PYTEST" -ra "${pytest_args[@]}" tests/e2e) >>"$out/$minor.log" 2>&1; then
    result=passed
  else
    result=failed
    failed=1
  fi
  summary=$(grep -E '^=+ .*(passed|failed|error).* in ' "$out/$minor.log" | tail -1 | tr -d '=' | xargs || true)
  pinned=KUBERNETES_${minor/./_}
  rows+=("| ${!pinned:-$minor} | $result | ${summary:-the cluster did not come up} | $(((SECONDS - begun) / 60)) min |")
  log "Kubernetes $minor: $result (${summary:-see $out/$minor.log})"
done
printf '| Kubernetes | result | tests | cluster and suite |\n| --- | --- | --- | --- |\n'
printf '%s\n' "${rows[@]}"
exit "$failed"
