#!/usr/bin/env bash
# What the e2e tests do to the cluster itself, on a kind cluster (hack/cluster.sh does the same on the
# local cluster); hack/kind-e2e.sh hands it to the tests as INITPIPELINE_E2E_CLUSTER.
#   cluster-ctl.sh CLUSTER restart-apiserver    stop the API server, and let the kubelet start it again
#   cluster-ctl.sh CLUSTER kill-container ID    SIGKILL one container, as a crash or an OOM kill would
#   cluster-ctl.sh CLUSTER audit-log            print the API server's audit log (kind-config.yaml)
set -euo pipefail
. "$(dirname "$0")/../lib.sh"

cluster=${1:?cluster name}
node=$cluster-control-plane
on_node() { docker exec "$node" "$@"; }
apiserver_up() { on_node curl -sfk --max-time 2 https://localhost:6443/readyz >/dev/null 2>&1; }
# the kube-apiserver container that runs now, if one does
apiserver_running() {
  local ids running
  ids=$(on_node ctr -n k8s.io containers ls -q 'labels."io.kubernetes.container.name"==kube-apiserver')
  [[ -n $ids ]] || return 0
  running=$(on_node ctr -n k8s.io task ls | awk 'NR > 1 && $3 == "RUNNING" {print $1}')
  grep -Fx -f <(echo "$ids") <<<"$running" || true
}

# SIGTERM to the API server's container; the kubelet starts its static Pod's container again. (Moving the
# manifest out and back waits out the kubelet's 20 s file check twice, and a failure in between would leave
# the cluster without an API server.)
restart_apiserver() {
  local id
  id=$(apiserver_running)
  [[ -n $id ]] || die "no kube-apiserver container runs"
  on_node ctr -n k8s.io task kill --signal SIGTERM "$id"
  for _ in $(seq 90); do [[ $(apiserver_running) != "$id" ]] && break; sleep 1; done
  [[ $(apiserver_running) != "$id" ]] || die "the API server did not stop"
  for _ in $(seq 180); do apiserver_up && return; sleep 1; done
  die "the API server did not come back"
}

kill_container() {
  local id=${1#containerd://}
  [[ $id =~ ^[0-9a-f]{64}$ ]] || die "kill-container: not a container id: ${1:-}"
  on_node ctr -n k8s.io task kill --signal SIGKILL "$id"
}

case ${2:-} in
  restart-apiserver) restart_apiserver ;;
  kill-container) kill_container "${3:-}" ;;
  audit-log) on_node cat /var/log/kubernetes/audit/audit.log ;;
  *) echo "usage: $0 CLUSTER restart-apiserver|kill-container ID|audit-log" >&2; exit 2 ;;
esac
