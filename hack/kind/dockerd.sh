#!/usr/bin/env bash
# A Docker engine of the project's own, for machines without one (like ours): Debian's docker.io,
# installed without starting its service, run with its own data root (cached: its images survive),
# socket and pid file, and without touching the host's firewall (no iptables rules, no masquerade, no
# docker0 bridge). `stop` stops only the dockerd that `start` started (the pid it recorded).
#   dockerd.sh start   prints the DOCKER_HOST to use
#   dockerd.sh stop
set -euo pipefail
. "$(dirname "$0")/../lib.sh"

STATE=$CACHE_DIR/kind
RUN=/run/initpipeline-docker
SOCKET=unix://$RUN/docker.sock
PIDFILE=$RUN/dockerd.pid

ours_running() {
  local pid
  pid=$(cat "$PIDFILE" 2>/dev/null) || return 1
  [[ $(readlink "/proc/$pid/exe" 2>/dev/null) == */dockerd ]]
}

install_docker() {
  command -v dockerd >/dev/null && command -v docker >/dev/null && return
  log "installing Debian's docker.io (its service is not started)"
  # Debian starts a package's service on install; policy-rc.d says no, and only if no policy is there
  local policy=/usr/sbin/policy-rc.d made=""
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && made=1
  fi
  local installed=1
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends docker.io; } \
    >"$STATE/apt.log" 2>&1 || installed=""
  # an if, not `[[ ]] && rm`: as the function's last command a false test would fail it under set -e
  if [[ -n $made ]]; then
    rm -f "$policy"
  fi
  [[ -n $installed ]] || die "apt-get install docker.io failed; see $STATE/apt.log"
}

start() {
  mkdir -p "$STATE" "$RUN"
  if ! ours_running; then
    install_docker
    # dockerd makes /run/docker/plugins whatever its exec root: remove it at stop only if it is ours
    [[ -e /run/docker ]] || touch "$RUN/made-run-docker"
    # and its identity, /etc/docker/key.json
    [[ -e /etc/docker/key.json ]] || touch "$RUN/made-key"
    log "starting the project's dockerd (data in $STATE/docker, log in $STATE/dockerd.log)"
    setsid dockerd --data-root "$STATE/docker" --exec-root "$RUN/exec" --pidfile "$PIDFILE" -H "$SOCKET" \
      --iptables=false --ip-masq=false --ip-forward=false --bridge=none \
      --exec-opt native.cgroupdriver=cgroupfs --cgroup-parent /initpipeline-docker \
      >"$STATE/dockerd.log" 2>&1 </dev/null &
    local i
    for i in $(seq 60); do
      docker -H "$SOCKET" version >/dev/null 2>&1 && break
      sleep 1
      ((i == 60)) && die "dockerd did not answer; see $STATE/dockerd.log"
    done
  fi
  echo "$SOCKET"
}

stop() {
  ours_running || return 0
  local pid; pid=$(cat "$PIDFILE")
  log "stopping the project's dockerd ($pid)"
  kill "$pid"
  local i
  for i in $(seq 60); do
    [[ -d /proc/$pid ]] || break
    sleep 1
  done
  [[ -d /proc/$pid ]] && die "dockerd $pid did not stop"
  # the cgroup parent of its containers, now empty
  local mnt
  while read -r mnt; do rmdir "$mnt/initpipeline-docker" 2>/dev/null || true; done < <(findmnt -rn -t cgroup,cgroup2 -o TARGET)
  # libnetwork's namespace files stay mounted after it exits
  local netns
  for netns in "$RUN"/exec/netns/*; do [[ -e $netns ]] && umount "$netns" 2>/dev/null; done
  if [[ -e $RUN/made-run-docker ]]; then rmdir /run/docker/plugins /run/docker 2>/dev/null || true; fi
  if [[ -e $RUN/made-key ]]; then rm -f /etc/docker/key.json; fi
  rm -rf "$RUN"
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
