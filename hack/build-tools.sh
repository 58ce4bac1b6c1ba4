#!/usr/bin/env bash
# Builds the cluster's binaries (Kubernetes, etcd, CoreDNS, Helm) from the Go
# module proxy at the versions pinned in hack/versions.env, into
# $CACHE_DIR/bin. A tool whose pinned module files have not changed since its
# last build is skipped, so a warm run takes a second.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

mkdir -p "$BIN_DIR" "$CACHE_DIR/src"

# build NAME[:TOOL] LDFLAGS PACKAGE... : builds in a copy of hack/tools/TOOL (TOOL defaults to NAME) so
# that -mod=mod never rewrites the repo's pinned go.mod/go.sum.
# OUT (default BIN_DIR) is where the binaries go.
build() {
  local tool=${1%%:*} module=${1#*:} ldflags=$2; shift 2
  local out=${OUT:-$BIN_DIR}
  local src=$HACK_DIR/tools/$module work=$CACHE_DIR/src/$tool stamp=$out/.$tool.stamp
  local want
  want=$( (cat "$src"/go.*; echo "$ldflags") | sha256sum | cut -c1-16)
  if [[ -f $stamp && $(cat "$stamp") == "$want" ]]; then
    log "$tool: up to date"
    return
  fi
  log "$tool: building $* (this takes a while on a cold cache)"
  rm -rf "$work" && mkdir -p "$work" "$out" && cp "$src"/go.* "$work/"
  local start=$SECONDS
  (cd "$work" && go build -mod=mod -trimpath -ldflags "$ldflags" -o "$out/" "$@")
  log "$tool: built in $((SECONDS - start))s"
  echo "$want" >"$stamp"
}

k8s_ldflags() {
  local v=${KUBERNETES_VERSION#v} flags=""
  local major=${v%%.*} rest=${v#*.}
  local minor=${rest%%.*}
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
    flags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  echo "-s -w$flags"
}

# link NAME...: the chosen minor's binaries are the ones in BIN_DIR (every script and test runs them there).
# KUBE_LINK=0 builds a minor without making it the current one (beside a running cluster of another).
link() {
  [[ ${KUBE_LINK:-1} == 0 ]] && return 0
  local name
  for name in "$@"; do ln -sfn "kubernetes-$KUBERNETES_MINOR/$name" "$BIN_DIR/$name"; done
}

# `build-tools.sh kind`: what hack/kind-e2e.sh needs besides, kind and kubeadm
if [[ ${1:-} == kind ]]; then
  build kind "-s -w" sigs.k8s.io/kind
  OUT=$KUBE_BIN_DIR build "kubeadm:kubernetes-$KUBERNETES_MINOR" "$(k8s_ldflags)" k8s.io/kubernetes/cmd/kubeadm
  link kubeadm
  exit 0
fi

OUT=$KUBE_BIN_DIR build "kubernetes:kubernetes-$KUBERNETES_MINOR" "$(k8s_ldflags)" \
  "${KUBE_BINARIES[@]/#/k8s.io/kubernetes/cmd/}"
link "${KUBE_BINARIES[@]}"
log "Kubernetes $KUBERNETES_VERSION"
build etcd "-s -w" go.etcd.io/etcd/server/v3
# go names the binary after the path element before /v3
[[ -x $BIN_DIR/server ]] && mv "$BIN_DIR/server" "$BIN_DIR/etcd"
build coredns "-s -w" github.com/coredns/coredns
# As Helm's release build: its version, and the Kubernetes version it assumes offline (helm template, lint):
# the default minor's, whatever minor the cluster runs, so that Helm is built once.
helm_flags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
  helm_flags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=${DEFAULT_KUBERNETES_MINOR#*.}"
done
build helm "$helm_flags" helm.sh/helm/v3/cmd/helm
log "binaries in $BIN_DIR"
