#!/usr/bin/env bash
# Installs what the tests and the local cluster need from Debian's packages,
# and the project with its test tools into a venv under $CACHE_DIR.
# Fast when everything is there already.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

PACKAGES=(
  # step tests and the benchmark (Redis and MariaDB: the redis and mysql wait targets and the MySQL
  # migrations; git: the server of the gitClone tests)
  postgresql openssl netcat-openbsd redis-server redis-tools mariadb-server mariadb-client git
  # make lint
  shellcheck
  # the local cluster
  containerd runc containernetworking-plugins busybox-static buildah debootstrap
  iptables iproute2 conntrack kmod util-linux procps psmisc curl dnsutils
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
# The migration step's tests run dbmate (from npm) and Flyway (Java, from Maven Central): Debian's
# packages only where the machine has no npm, Maven or JDK of its own.
command -v npm >/dev/null || missing+=(npm)
command -v mvn >/dev/null || missing+=(maven)
command -v javac >/dev/null || missing+=(default-jdk-headless)
if ((${#missing[@]})); then
  log "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian starts these on install; the tests run their own instances.
for service in postgresql containerd redis-server mariadb; do
  if command -v systemctl >/dev/null && systemctl is-active --quiet "$service" 2>/dev/null; then
    systemctl stop "$service" || true
  fi
done

VENV=$CACHE_DIR/venv
# the checkout's path too: the install is editable, so another clone must install itself
stamp=$( (echo "$REPO_ROOT"; cat "$REPO_ROOT/setup.cfg" "$REPO_ROOT/pyproject.toml" "$REPO_ROOT/constraints.txt") |
  sha256sum | cut -c1-16)
if [[ ! -x $VENV/bin/python || $(cat "$VENV/.stamp" 2>/dev/null) != "$stamp" ]]; then
  log "installing initpipeline and its test tools into $VENV (versions from constraints.txt)"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  "$VENV/bin/pip" install -q -c "$REPO_ROOT/constraints.txt" -e "${REPO_ROOT}[cli,test]"
  echo "$stamp" >"$VENV/.stamp"
fi
