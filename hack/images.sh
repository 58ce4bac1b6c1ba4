#!/usr/bin/env bash
# Builds the cluster's images without a registry and imports them into the
# cluster's containerd (k8s.io namespace): a pause image (our own tiny
# program), busybox (Debian's busybox-static), a Debian base with Python
# (debootstrap), and the project's image from its Dockerfile on that base.
# Each is rebuilt only when its inputs change.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

IMAGE_DIR=$CACHE_DIR/images
mkdir -p "$IMAGE_DIR" "$RUN_DIR/buildah"

have_image() { buildah_ images -q "$1" >/dev/null 2>&1; }

# commit_rootfs NAME DIR CONFIG...: a one-layer image from a folder.
commit_rootfs() {
  local name=$1 dir=$2; shift 2
  local ctr mnt
  ctr=$(buildah_ from scratch)
  mnt=$(buildah_ mount "$ctr")
  cp -a "$dir/." "$mnt/"
  buildah_ umount "$ctr" >/dev/null
  buildah_ config "$@" "$ctr"
  buildah_ commit -q --rm "$ctr" "$name" >/dev/null
}

build_pause() {
  local stamp
  stamp=$(cat "$HACK_DIR/images/pause/"* | sha256sum | cut -c1-16)
  [[ $(cat "$IMAGE_DIR/pause.stamp" 2>/dev/null) == "$stamp" ]] && have_image "$PAUSE_IMAGE" && return
  log "image $PAUSE_IMAGE"
  local root; root=$(mktemp -d)
  pause_tree "$root"
  commit_rootfs "$PAUSE_IMAGE" "$root" --entrypoint '["/pause"]' --user 65535:65535
  rm -rf "$root"
  echo "$stamp" >"$IMAGE_DIR/pause.stamp"
}

build_busybox() {
  have_image "$BUSYBOX_IMAGE" && return
  log "image $BUSYBOX_IMAGE (from Debian's busybox-static)"
  local root; root=$(mktemp -d)
  busybox_tree "$root"
  commit_rootfs "$BUSYBOX_IMAGE" "$root" --cmd '["sh"]' --env PATH=/bin
  rm -rf "$root"
}

# The Debian tree of the base image (also what hack/kind-e2e.sh builds its base from).
DEBIAN_ROOTFS=$CACHE_DIR/rootfs/bookworm
ensure_rootfs() {
  local root=$DEBIAN_ROOTFS
  if [[ ! -f $root/.complete ]]; then
    log "debootstrap: a minimal Debian bookworm with Python (about a minute)"
    rm -rf "$root" && mkdir -p "$root"
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$root" \
      http://deb.debian.org/debian >"$IMAGE_DIR/debootstrap.log" 2>&1 \
      || die "debootstrap failed; see $IMAGE_DIR/debootstrap.log"
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    touch "$root/.complete"
  fi
}

build_base() {
  have_image "$BASE_IMAGE" && return
  ensure_rootfs
  log "image $BASE_IMAGE"
  commit_rootfs "$BASE_IMAGE" "$DEBIAN_ROOTFS" --cmd '["python3"]' \
    --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
}

build_project() {
  local stamp
  stamp=$(cd "$REPO_ROOT" && find Dockerfile setup.cfg pyproject.toml README.md constraints.txt operator -type f \
    -not -path '*/__pycache__/*' -not -path '*.egg-info*' -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)
  [[ $(cat "$IMAGE_DIR/project.stamp" 2>/dev/null) == "$stamp" ]] && have_image "$PROJECT_IMAGE" && return
  log "image $PROJECT_IMAGE (from the Dockerfile)"
  local pip_cert=()
  if [[ -f /etc/ssl/certs/ca-certificates.crt ]]; then
    pip_cert=(-v /etc/ssl/certs/ca-certificates.crt:/run/host-ca.crt:ro --build-arg PIP_CERT=/run/host-ca.crt)
  fi
  buildah_ bud -q --pull=never --isolation=chroot --layers --build-arg "BASE=$BASE_IMAGE" "${pip_cert[@]}" \
    -t "$PROJECT_IMAGE" -f "$REPO_ROOT/Dockerfile" "$REPO_ROOT" >"$IMAGE_DIR/build.log" 2>&1 \
    || { tail -20 "$IMAGE_DIR/build.log" >&2; die "image build failed; see $IMAGE_DIR/build.log"; }
  echo "$stamp" >"$IMAGE_DIR/project.stamp"
}

# import NAME: into containerd, unless it already has this exact image.
import_image() {
  local name=$1 id file
  id=$(buildah_ images --no-trunc --format '{{.ID}}' "$name" | head -1)
  file=$IMAGE_DIR/$(echo "$name" | tr '/:' '__').tar
  if [[ -n $(ctr_ images ls -q "name==$name" 2>/dev/null) && $(cat "$file.id" 2>/dev/null) == "$id" ]]; then
    return
  fi
  log "importing $name into containerd"
  rm -f "$file"
  buildah_ push -q "$name" "docker-archive:$file:$name" >/dev/null
  ctr_ images import --no-unpack=false "$file" >/dev/null
  echo "$id" >"$file.id"
  rm -f "$file"
}

if [[ ${1:-} == --rootfs ]]; then
  ensure_rootfs
  echo "$DEBIAN_ROOTFS"
  exit 0
fi
build_pause
build_busybox
build_base
build_project
if [[ ${1:-} != --no-import ]]; then
  for image in "$PAUSE_IMAGE" "$BUSYBOX_IMAGE" "$PROJECT_IMAGE"; do
    import_image "$image"
  done
fi
# leave no working containers or overlay mounts of the builds behind
buildah_ rm --all >/dev/null 2>&1 || true
buildah_ umount --all >/dev/null 2>&1 || true
