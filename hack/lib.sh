# Shared settings for hack/*.sh. Sourced, never run.
# shellcheck shell=bash
# shellcheck disable=SC2034  # the variables are for the scripts that source this file
HACK_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$HACK_DIR/.." && pwd)
# shellcheck source=versions.env
. "$HACK_DIR/versions.env"
# The Kubernetes of the local cluster: KUBERNETES_VERSION names a minor (1.35, v1.35 or v1.35.4 all pick the
# pinned patch of 1.35), else the default.
KUBERNETES_MINOR=${KUBERNETES_VERSION:-$DEFAULT_KUBERNETES_MINOR}
KUBERNETES_MINOR=$(cut -d. -f1,2 <<<"${KUBERNETES_MINOR#v}")
_pinned=KUBERNETES_${KUBERNETES_MINOR/./_}
if [[ ! $KUBERNETES_MINOR =~ ^1\.[0-9]+$ || -z ${!_pinned:-} ]]; then
  printf 'error: KUBERNETES_VERSION=%s: the local cluster runs one of %s\n' "${KUBERNETES_VERSION:-}" \
    "$KUBERNETES_MINORS" >&2
  exit 2
fi
KUBERNETES_VERSION=${!_pinned}
unset _pinned
# Heavy artifacts (Go caches, binaries, images, the cluster's state) live outside the repo.
CACHE_DIR=${INITPIPELINE_CACHE:-$HOME/.cache/initpipeline}
BIN_DIR=$CACHE_DIR/bin
# Each minor's Kubernetes binaries apart; build-tools.sh links the chosen minor's into BIN_DIR
KUBE_BIN_DIR=$BIN_DIR/kubernetes-$KUBERNETES_MINOR
KUBE_BINARIES=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)
export GOMODCACHE=$CACHE_DIR/go/mod GOCACHE=$CACHE_DIR/go/build GOFLAGS=-buildvcs=false
export GOTOOLCHAIN=local CGO_ENABLED=0

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# The local cluster.
CLUSTER_DIR=$CACHE_DIR/cluster
RUN_DIR=/run/initpipeline
CONTAINERD_SOCK=$RUN_DIR/containerd/containerd.sock
CONTAINERD_STATE=$RUN_DIR/containerd/state
CGROUP_ROOT=/initpipeline  # the kubelet's cgroupRoot: pods' cgroups are ours alone
NODE_NAME=initpipeline-node
NODE_IP=198.18.0.1          # on our bridge; 198.18.0.0/15 is reserved for benchmarking, never routed
POD_CIDR=198.18.0.0/16
SERVICE_CIDR=198.19.0.0/16
DNS_SERVICE_IP=198.19.0.10
BRIDGE=ipl0
KUBECONFIG_FILE=$CLUSTER_DIR/kubeconfig

# Images, all built locally and imported into containerd (no registry).
INITPIPELINE_VERSION=$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$REPO_ROOT/operator/initpipeline/__init__.py")
PAUSE_IMAGE=initpipeline.local/pause:1.0
BUSYBOX_IMAGE=initpipeline.local/busybox:1.35
BASE_IMAGE=initpipeline.local/debian-python:bookworm
PROJECT_IMAGE=docker.io/initpipeline/initpipeline:$INITPIPELINE_VERSION

# The file trees of two images, for hack/images.sh (buildah) and hack/kind/node-image.sh (docker):
# the pause image (our own tiny program) and busybox (Debian's busybox-static).
pause_tree() {
  (cd "$HACK_DIR/images/pause" && go build -trimpath -ldflags "-s -w" -o "$1/pause" .)
}
busybox_tree() {
  local root=$1
  mkdir -p "$root/bin" "$root/tmp" "$root/etc"
  cp /bin/busybox "$root/bin/busybox"
  chroot "$root" /bin/busybox --install -s /bin
  echo "root:x:0:0:root:/root:/bin/sh" >"$root/etc/passwd"
  echo "root:x:0:" >"$root/etc/group"
  chmod 1777 "$root/tmp"
}

# Docker images of ours are rebuilt whenever their inputs change; these remove what a rebuild replaced
# (a few hundred MB each time) and never touch an image of another name.
# docker build -t REF ARGS..., then remove the image REF named before, if the build made a new one.
docker_build_replacing() {
  local ref=$1 before after
  shift
  before=$(docker image inspect -f '{{.Id}}' "$ref" 2>/dev/null || true)
  docker build -q -t "$ref" "$@" >/dev/null
  after=$(docker image inspect -f '{{.Id}}' "$ref")
  if [[ -n $before && $before != "$after" ]]; then
    docker rmi "$before" >/dev/null 2>&1 || log "the previous $ref is still in use: kept"
  fi
}
# Remove every tag of REPO but KEEP (REPO's tags are the stamps of its inputs).
docker_drop_other_tags() {
  local repo=$1 keep=$2 ref
  for ref in $(docker images --format '{{.Repository}}:{{.Tag}}' "$repo"); do
    [[ $ref == "$repo:$keep" ]] || docker rmi "$ref" >/dev/null 2>&1 || log "$ref is still in use: kept"
  done
}

buildah_() { buildah --root "$CACHE_DIR/buildah/storage" --runroot "$RUN_DIR/buildah" --storage-driver overlay "$@"; }
ctr_() { ctr --address "$CONTAINERD_SOCK" --namespace k8s.io "$@"; }
