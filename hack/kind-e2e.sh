#!/usr/bin/env bash
# The end-to-end suite on a kind cluster: `make kind-e2e`.
#  - Docker: the one that answers, or else the project's own (hack/kind/dockerd.sh, Debian's docker.io).
#  - Images, by KIND_IMAGES:
#      local (the default): everything built here, from Debian's packages and the Go module proxy
#        (hack/kind/node-image.sh builds kind's node image; the project's image is built on a Debian
#        base made by debootstrap);
#      public: kind's own default node image (kindest/node, or KIND_NODE_IMAGE) and the Dockerfile's
#        public Python base, pulled from their registries.
#  - The cluster from kind-config.yaml (name: KIND_CLUSTER, default initpipeline), the project's image
#    built with `docker build` and loaded, the operator installed with the chart, then tests/e2e.
# It deletes only the cluster it created (with someone else's Docker, it refuses to start if one of that
# name exists), stops only a dockerd it started, and removes only the cgroups and the firewall chain it made.
# KIND_KEEP=1 keeps the cluster afterwards (delete it with `kind delete cluster --name NAME`).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

NAME=${KIND_CLUSTER:-initpipeline}
IMAGES=${KIND_IMAGES:-local}
STATE=$CACHE_DIR/kind
KUBECONFIG_KIND=$STATE/kubeconfig-$NAME
KIND=$BIN_DIR/kind
GUARD=INITPIPELINE-KIND
BRIDGE_NAME=ipl-kind0
[[ $IMAGES == local || $IMAGES == public ]] || die "KIND_IMAGES must be local or public, not '$IMAGES'"
mkdir -p "$STATE"
start=$SECONDS

created="" own_dockerd="" own_network="" guarded="" nodes=()
finish() {
  local status=$?
  if [[ -n ${KIND_KEEP:-} ]]; then
    log "kept: kind cluster $NAME (KUBECONFIG=$KUBECONFIG_KIND${own_dockerd:+, DOCKER_HOST=$DOCKER_HOST})"
    log "kind-e2e: $((SECONDS - start)) s in all"
    exit "$status"
  fi
  if [[ -n $created ]]; then
    log "deleting kind cluster $NAME"
    "$KIND" delete cluster --name "$NAME" --kubeconfig "$KUBECONFIG_KIND" || status=1
    remove_node_cgroups
  fi
  if [[ -n $guarded ]]; then
    iptables -D FORWARD -j "$GUARD" && iptables -F "$GUARD" && iptables -X "$GUARD" || status=1
  fi
  if [[ -n $own_network ]]; then docker network rm kind >/dev/null || status=1; fi
  if [[ -n $own_dockerd ]]; then bash "$HACK_DIR/kind/dockerd.sh" stop || status=1; fi
  log "kind-e2e: $((SECONDS - start)) s in all"
  exit "$status"
}
trap finish EXIT
trap "exit 143" TERM INT

# The cgroups that hack/kind/shim/docker made for our nodes (the folder of each node, with what
# systemd and the kubelet made below it), deepest first; a cgroup with a process in it stays.
remove_node_cgroups() {
  local node mnt
  for node in "${nodes[@]}"; do
    while read -r mnt; do
      [[ -d $mnt/initpipeline-kind/$node ]] || continue
      find "$mnt/initpipeline-kind/$node" -depth -type d -exec rmdir {} + 2>/dev/null || true
      [[ -d $mnt/initpipeline-kind/$node ]] && log "warning: $mnt/initpipeline-kind/$node is still in use"
      rmdir "$mnt/initpipeline-kind" 2>/dev/null || true
    done < <(findmnt -rn -t cgroup,cgroup2 -o TARGET)
  done
}

# --- Docker ---------------------------------------------------------------------------------------------
if ! docker version >/dev/null 2>&1; then
  DOCKER_HOST=$(bash "$HACK_DIR/kind/dockerd.sh" start)
  export DOCKER_HOST
  own_dockerd=1
fi
bash "$HACK_DIR/build-tools.sh" kind
# before the images: a kept cluster's node image is then free to be replaced
if "$KIND" get clusters 2>/dev/null | grep -qx "$NAME"; then
  [[ -n $own_dockerd ]] || die "a kind cluster named $NAME exists already; delete it, or set KIND_CLUSTER"
  log "deleting kind cluster $NAME, which a KIND_KEEP run left in our dockerd"
  mapfile -t nodes < <("$KIND" get nodes --name "$NAME")
  "$KIND" delete cluster --name "$NAME" --kubeconfig "$KUBECONFIG_KIND"
  remove_node_cgroups
fi

# --- images ---------------------------------------------------------------------------------------------
if [[ $IMAGES == local ]]; then
  NODE_IMAGE=$(bash "$HACK_DIR/kind/node-image.sh")
  # the project's base: the Debian tree of the local cluster's base, with this machine's CA bundle for
  # pip (a TLS-inspecting proxy may stand between it and PyPI; the buildah build mounts the same file)
  rootfs=$(bash "$HACK_DIR/images.sh" --rootfs)
  base=initpipeline.local/debian-python:bookworm-$( (stat -c %Y "$rootfs/.complete"; \
    cat /etc/ssl/certs/ca-certificates.crt) | sha256sum | cut -c1-12)
  if ! docker image inspect "$base" >/dev/null 2>&1; then
    log "image $base"
    tar -C "$rootfs" --exclude=./.complete -c . | docker import --change 'CMD ["python3"]' \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' - "$base-plain" >/dev/null
    printf 'FROM %s\nCOPY ca-certificates.crt /etc/ssl/host-ca.crt\n' "$base-plain" \
      | docker build -q -t "$base" -f - /etc/ssl/certs >/dev/null
    docker rmi "$base-plain" >/dev/null
  fi
  docker_drop_other_tags initpipeline.local/debian-python "${base##*:}"
  build_args=(--build-arg "BASE=$base" --build-arg PIP_CERT=/etc/ssl/host-ca.crt)
  # busybox is in the node image already (node-image.sh), under the tests' name
else
  NODE_IMAGE=${KIND_NODE_IMAGE:-}
  build_args=()
  docker build -q -t "$BUSYBOX_IMAGE" -f "$HACK_DIR/images/busybox.Dockerfile" "$HACK_DIR/images" >/dev/null
fi
log "image $PROJECT_IMAGE (docker build)"
# Each stage under a name of ours too: the legacy builder keeps a stage's result only as an untagged image,
# so a rebuild would leave the previous one behind, and removing untagged images would drop the cache.
for stage in build runtime; do
  docker_build_replacing "initpipeline.local/project-stage:$stage" --target "$stage" --network host \
    "${build_args[@]}" "$REPO_ROOT"
done
docker build -q --network host "${build_args[@]}" -t "$PROJECT_IMAGE" "$REPO_ROOT" >/dev/null
# Every image in our own dockerd is ours: untagged ones are what earlier builds left. In someone else's
# Docker the project image's tag may have named an image they pulled: left to them, as any docker build does.
if [[ -n $own_dockerd ]]; then docker image prune -f >/dev/null; fi

# A sandbox may refuse privileged containers (here: "unable to apply caps"); kind's nodes are, so kind then
# goes through the front that runs them with what the sandbox allows.
if ! docker run --rm --privileged --entrypoint /bin/true "${NODE_IMAGE:-$BUSYBOX_IMAGE}" >/dev/null 2>&1; then
  log "privileged containers fail here: kind goes through hack/kind/shim/docker"
  INITPIPELINE_REAL_DOCKER=$(command -v docker)
  export INITPIPELINE_REAL_DOCKER PATH=$HACK_DIR/kind/shim:$PATH
fi

# --- the network (our own dockerd only) -----------------------------------------------------------------
# Nodes and Pods reach this host (the tests' servers listen on the network's gateway) and nothing beyond:
# the network's bridge has a name of ours, and a chain of ours drops whatever would be forwarded from it.
# Everything in our own dockerd is ours: the network a KIND_KEEP run left is reused, and removed at the end.
if [[ -n $own_dockerd ]]; then
  own_network=1
  if ! docker network inspect kind >/dev/null 2>&1; then
    docker network create -d bridge -o com.docker.network.bridge.name=$BRIDGE_NAME \
      -o com.docker.network.bridge.enable_ip_masquerade=false kind >/dev/null
  fi
  guarded=1
  if ! iptables -L "$GUARD" -n >/dev/null 2>&1; then
    iptables -N "$GUARD"
    iptables -A "$GUARD" -i "$BRIDGE_NAME" ! -o "$BRIDGE_NAME" -j DROP
    iptables -I FORWARD -j "$GUARD"
  fi
fi

# --- the cluster ----------------------------------------------------------------------------------------
log "kind cluster $NAME from kind-config.yaml, node image ${NODE_IMAGE:-"kind's default"}"
created=1
nodes=("$NAME-control-plane")
# kind resolves the config's relative hostPath against the working directory
(cd "$REPO_ROOT" && "$KIND" create cluster --name "$NAME" --config kind-config.yaml \
  ${NODE_IMAGE:+--image "$NODE_IMAGE"} ${KIND_KEEP:+--retain} --kubeconfig "$KUBECONFIG_KIND" --wait 0s)
mapfile -t nodes < <("$KIND" get nodes --name "$NAME")
export KUBECONFIG=$KUBECONFIG_KIND
kubectl=("$BIN_DIR/kubectl")
"${kubectl[@]}" wait --for=condition=Ready node --all --timeout=180s >/dev/null
# Pods' DNS answers the cluster's names only: the tests need no other, and nothing is forwarded off the node.
"${kubectl[@]}" -n kube-system create configmap coredns --from-file=Corefile="$HACK_DIR/kind/Corefile" \
  --dry-run=client -o yaml | "${kubectl[@]}" apply -f - >/dev/null
"${kubectl[@]}" -n kube-system rollout restart deployment/coredns >/dev/null
"${kubectl[@]}" -n kube-system rollout status deployment/coredns --timeout=180s >/dev/null

"$KIND" load docker-image --name "$NAME" "$PROJECT_IMAGE" "$BUSYBOX_IMAGE"
bash "$HACK_DIR/install-operator.sh" --set logFormat=json

host_ip=$(docker network inspect kind -f '{{range .IPAM.Config}}{{println .Gateway}}{{end}}' | grep -m1 '\.')
log "running tests/e2e against kind cluster $NAME (the tests' servers listen on $host_ip)"
# shellcheck disable=SC2086  # PYTEST_ARGS holds words, as `make kind-e2e PYTEST_ARGS=...` passes them
INITPIPELINE_E2E_KUBECONFIG=$KUBECONFIG_KIND INITPIPELINE_E2E_HOST_IP=$host_ip INITPIPELINE_E2E_INSTALL=1 \
  INITPIPELINE_E2E_CLUSTER="bash $HACK_DIR/kind/cluster-ctl.sh $NAME" \
  "$CACHE_DIR/venv/bin/pytest" -ra "$REPO_ROOT/tests/e2e" ${PYTEST_ARGS:-}
