#!/usr/bin/env bash
# Builds kind's node image here, from Debian's packages and the Go module proxy only (no registry):
#  1. a base like kindest/base: Debian bookworm (debootstrap) with systemd, Debian's containerd and
#     runc, the CNI plugins, and kind's own files for a node (its entrypoint, units, containerd
#     configuration), taken from the kind module that hack/build-tools.sh downloaded;
#  2. the node: kubeadm, the kubelet and kubectl (built by hack/build-tools.sh), and preloaded in its
#     containerd every image kubeadm asks for, each made from our own binaries under the name kubeadm
#     expects (registry.k8s.io/...), plus busybox and pause for the bridge CNI that stands in for kindnetd.
# Prints the node image's name. Each image is rebuilt only when its inputs change; the Debian tree is
# cached in $CACHE_DIR/kind.
# Needs DOCKER_HOST (or a working docker) and root (debootstrap, chroot).
set -euo pipefail
. "$(dirname "$0")/../lib.sh"

STATE=$CACHE_DIR/kind
KIND_VERSION=$(awk '$1 == "require" && $2 == "sigs.k8s.io/kind" {print $3}' "$HACK_DIR/tools/kind/go.mod")
KIND_FILES=$GOMODCACHE/sigs.k8s.io/kind@$KIND_VERSION/images/base/files
PACKAGES=systemd,conntrack,iptables,iproute2,ethtool,util-linux,mount,kmod,libseccomp2,pigz,e2fsprogs,bash
PACKAGES+=,ca-certificates,curl,jq,procps,containerd,runc,containernetworking-plugins
mkdir -p "$STATE"
[[ -d $KIND_FILES ]] || die "no kind module in $GOMODCACHE: run hack/build-tools.sh kind first"

have_image() { docker image inspect "$1" >/dev/null 2>&1; }
digest() { sha256sum | cut -c1-12; }

# --- 1. the base --------------------------------------------------------------------------------------
base_stamp=$( (echo "$PACKAGES $KIND_VERSION"; cat "$0"; find "$KIND_FILES" -type f -print0 | sort -z \
  | xargs -0 cat) | digest)
BASE=initpipeline.local/kind-base:$base_stamp
ROOTFS=$STATE/rootfs-base

make_rootfs() {
  log "debootstrap: the node's Debian bookworm with systemd and containerd (a few minutes)"
  rm -rf "$ROOTFS" && mkdir -p "$ROOTFS"
  debootstrap --variant=minbase --include="$PACKAGES" bookworm "$ROOTFS" http://deb.debian.org/debian \
    >"$STATE/debootstrap.log" 2>&1 || die "debootstrap failed; see $STATE/debootstrap.log"
  local r=$ROOTFS
  rm -rf "$r"/var/cache/apt/archives/*.deb "$r"/var/lib/apt/lists/* "$r"/usr/share/doc/* "$r"/usr/share/man/*
  # what kind's base Dockerfile copies and runs, on Debian's containerd, runc and CNI plugins
  install -m 0755 "$KIND_FILES"/usr/local/bin/* "$r/usr/local/bin/"
  mkdir -p "$r/kind/bin" "$r/etc/containerd" "$r/etc/systemd/system/kubelet.service.d" "$r/opt/cni" \
    "$r/etc/kubernetes/manifests" "$r/usr/local/sbin"
  install -m 0644 "$KIND_FILES"/kind/README.txt "$r/kind/"
  install -m 0755 "$KIND_FILES"/kind/bin/* "$r/kind/bin/"
  install -m 0644 "$KIND_FILES"/etc/crictl.yaml "$r/etc/"
  install -m 0644 "$KIND_FILES"/etc/default/* "$r/etc/default/"
  install -m 0644 "$KIND_FILES"/etc/sysctl.d/* "$r/etc/sysctl.d/"
  install -m 0644 "$KIND_FILES"/etc/systemd/system/*.service "$KIND_FILES"/etc/systemd/system/*.slice \
    "$r/etc/systemd/system/"
  install -m 0644 "$KIND_FILES"/etc/systemd/system/kubelet.service.d/* "$r/etc/systemd/system/kubelet.service.d/"
  # This sandbox withholds CAP_SYS_RESOURCE, without which no process may lower its oom_score_adj:
  # containerd must not try for the containers it starts.
  sed 's/^\(\s*restrict_oom_score_adj\s*=\s*\)false/\1true/' "$KIND_FILES/etc/containerd/config.toml" \
    >"$r/etc/containerd/config.toml"
  sed -i '/^OOMScoreAdjust=/d' "$r/etc/systemd/system/containerd.service"
  for tool in containerd containerd-shim-runc-v2 ctr; do ln -sf "/usr/bin/$tool" "$r/usr/local/bin/$tool"; done
  ln -sf /usr/sbin/runc "$r/usr/local/sbin/runc"
  ln -sfn /usr/lib/cni "$r/opt/cni/bin"
  chroot "$r" ctr oci spec \
    | chroot "$r" jq '.hooks.createContainer[.hooks.createContainer | length] |= . + {"path": "/kind/bin/mount-product-files.sh"}' \
    | chroot "$r" jq 'del(.process.rlimits)' >"$r/etc/containerd/cri-base.json"
  find "$r/lib/systemd/system/sysinit.target.wants/" -name systemd-tmpfiles-setup.service -delete
  rm -f "$r"/lib/systemd/system/multi-user.target.wants/* "$r"/etc/systemd/system/*.wants/* \
    "$r"/lib/systemd/system/local-fs.target.wants/* "$r"/lib/systemd/system/sockets.target.wants/*udev* \
    "$r"/lib/systemd/system/sockets.target.wants/*initctl* "$r"/lib/systemd/system/basic.target.wants/*
  echo "ReadKMsg=no" >>"$r/etc/systemd/journald.conf"
  ln -sf /usr/lib/systemd/systemd "$r/sbin/init"
  chroot "$r" systemctl enable kubelet.service containerd.service undo-mount-hacks.service >/dev/null 2>&1
  chroot "$r" systemctl mask systemd-binfmt.service >/dev/null 2>&1
  echo "$base_stamp" >"$ROOTFS/.stamp"
}

if ! have_image "$BASE"; then
  [[ $(cat "$ROOTFS/.stamp" 2>/dev/null) == "$base_stamp" ]] || make_rootfs
  log "image $BASE"
  tar -C "$ROOTFS" --exclude=./.stamp -c . | docker import - "$BASE-tree" >/dev/null
  # docker import takes no STOPSIGNAL: a build step sets the configuration
  printf '%s\n' "FROM $BASE-tree" 'ENV container=docker' 'STOPSIGNAL SIGRTMIN+3' \
    'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]' | docker build -q -t "$BASE" - >/dev/null
  docker rmi "$BASE-tree" >/dev/null
fi

# --- 2. the node --------------------------------------------------------------------------------------
KUBEADM=$BIN_DIR/kubeadm
[[ -x $KUBEADM ]] || die "no $KUBEADM: run hack/build-tools.sh kind first"
node_stamp=$( (echo "$BASE"; cat "$HACK_DIR/kind/node/"*; cd "$BIN_DIR" && cat kubeadm kubelet kubectl \
  kube-apiserver kube-controller-manager kube-scheduler kube-proxy etcd coredns; cat "$HACK_DIR/images/pause/"*) \
  | digest)
NODE=initpipeline.local/kind-node:$KUBERNETES_VERSION-$node_stamp
# what earlier inputs built (a KIND_KEEP cluster's node is still in use: removed by a later run)
finish() {
  docker_drop_other_tags initpipeline.local/kind-node "${NODE##*:}"
  docker_drop_other_tags initpipeline.local/kind-base "$base_stamp"
  echo "$NODE"
}
if have_image "$NODE"; then
  finish
  exit 0
fi

work=$(mktemp -d)
builder=""
cleanup() {
  [[ -n $builder ]] && docker rm -f "$builder" >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT

# image NAME ENTRYPOINT-JSON FILE...: a one-layer image of static binaries, from scratch
scratch_image() {
  local name=$1 entrypoint=$2; shift 2
  mkdir -p "$work/$name/usr/local/bin"
  cp "$@" "$work/$name/usr/local/bin/"
  tar -C "$work/$name" -c . | docker import --change 'ENV PATH=/usr/local/bin' \
    --change "ENTRYPOINT $entrypoint" - "$name" >/dev/null
}

log "images of the control plane, from our binaries"
images=()
while read -r ref; do
  name=${ref##*/} && name=${name%%:*}
  case $name in
    kube-apiserver|kube-controller-manager|kube-scheduler|etcd|coredns)
      scratch_image "$ref" "[\"/usr/local/bin/$name\"]" "$BIN_DIR/$name" ;;
    kube-proxy)
      # kube-proxy runs iptables and conntrack: on the base, which has them
      mkdir -p "$work/kube-proxy" && cp "$BIN_DIR/kube-proxy" "$work/kube-proxy/"
      printf 'FROM %s\nCOPY kube-proxy /usr/local/bin/kube-proxy\nENTRYPOINT ["/usr/local/bin/kube-proxy"]\n' \
        "$BASE" >"$work/kube-proxy/Dockerfile"
      docker build -q -t "$ref" "$work/kube-proxy" >/dev/null ;;
    pause)
      mkdir -p "$work/pause" && pause_tree "$work/pause"
      tar -C "$work/pause" -c . | docker import --change 'ENTRYPOINT ["/pause"]' --change 'USER 65535:65535' \
        - "$ref" >/dev/null
      pause_ref=$ref ;;
    *) die "kubeadm asks for an image this script cannot build: $ref" ;;
  esac
  images+=("$ref")
done < <("$KUBEADM" config images list --kubernetes-version "$KUBERNETES_VERSION" 2>/dev/null)
# busybox for the bridge CNI's installer, the same as the local cluster's (and the tests')
busybox_tree "$work/busybox"
tar -C "$work/busybox" -c . | docker import --change 'ENV PATH=/bin' --change 'CMD ["sh"]' - "$BUSYBOX_IMAGE" >/dev/null
images+=("$BUSYBOX_IMAGE")

log "image $NODE"
mkdir -p "$work/node"
cp "$KUBEADM" "$BIN_DIR/kubelet" "$BIN_DIR/kubectl" "$work/node/"
sed -e "s|BUSYBOX_IMAGE|$BUSYBOX_IMAGE|" -e "s|PAUSE_IMAGE|$pause_ref|" "$HACK_DIR/kind/node/default-cni.yaml" \
  >"$work/node/default-cni.yaml"
echo "$KUBERNETES_VERSION" >"$work/node/version"
cat >"$work/node/Dockerfile" <<DOCKERFILE
FROM $BASE
COPY kubeadm kubelet kubectl /usr/bin/
COPY version /kind/version
COPY default-cni.yaml /kind/manifests/default-cni.yaml
RUN sed -i 's|^\(\s*sandbox_image\s*=\s*\).*|\1"$pause_ref"|' /etc/containerd/config.toml
DOCKERFILE
docker build -q -t "$NODE-layers" "$work/node" >/dev/null

# Preload the images into the node's containerd, as kind build node-image does: containerd runs in a
# container of the node image, takes the images (content only; it unpacks them when a Pod first uses
# them), stops, and the container becomes the image.
builder=$(docker run -d --entrypoint /usr/bin/containerd "$NODE-layers")
for _ in $(seq 30); do docker exec "$builder" ctr version >/dev/null 2>&1 && break; sleep 1; done
docker save "${images[@]}" | docker exec -i "$builder" \
  ctr --namespace=k8s.io images import --all-platforms --no-unpack - >/dev/null
for ref in "${images[@]}"; do
  docker exec "$builder" ctr --namespace=k8s.io images list -q "name==$ref" | grep -qx "$ref" \
    || die "$ref is missing in the node's containerd"
done
docker stop -t 10 "$builder" >/dev/null
docker commit --change 'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]' --change 'CMD []' \
  "$builder" "$NODE" >/dev/null
docker rm "$builder" >/dev/null && builder=""
docker rmi "$NODE-layers" >/dev/null
finish
