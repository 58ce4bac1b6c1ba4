#!/usr/bin/env bash
# What the e2e tests do to the cluster itself, on a kind cluster (hack/cluster.sh does the same on the
# local cluster); hack/kind-e2e.sh hands it to the tests as INITPIPELINE_E2E_CLUSTER.
#   cluster-ctl.sh CLUSTER restart-apiserver    stop the API server's static Pod, and start it again
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
  on_node ctr -n k8s.io task ls | awk 'NR > 1 && $3 == "RUNNING" {print $1}' | while read -r id; do
    on_node ctr -n k8s.io container info "$id" | grep -q '"io.kubernetes.container.name": "kube-apiserver"' \
      && echo "$id"
  done
}

restart_apiserver() {
  local manifests=/etc/kubernetes/manifests held=/etc/kubernetes/held-manifests
  on_node mkdir -p "$held"
  on_node mv "$manifests/kube-apiserver.yaml" "$held/"
  for _ in $(seq 60); do [[ -z $(apiserver_running) ]] && break; sleep 1; done
  [[ -z $(apiserver_running) ]] || die "the API server did not stop"
  on_node mv "$held/kube-apiserver.yaml" "$manifests/"
  for _ in $(seq 120); do apiserver_up && return; sleep 1; done
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
