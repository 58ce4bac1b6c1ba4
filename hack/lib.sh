# Shared settings for hack/*.sh. Sourced, never run.
# shellcheck shell=bash
HACK_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$HACK_DIR/.." && pwd)
# shellcheck source=versions.env
. "$HACK_DIR/versions.env"
# Heavy artifacts (Go caches, binaries, images, the cluster's state) live outside the repo.
CACHE_DIR=${INITPIPELINE_CACHE:-$HOME/.cache/initpipeline}
BIN_DIR=$CACHE_DIR/bin
export GOMODCACHE=$CACHE_DIR/go/mod GOCACHE=$CACHE_DIR/go/build GOFLAGS=-buildvcs=false
export GOTOOLCHAIN=local CGO_ENABLED=0

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
