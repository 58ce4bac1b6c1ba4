#!/usr/bin/env bash
# Installs the migration tools that the migration step's tests run against our runner, each from its
# own registry at the version pinned under hack/tools/: golang-migrate with its PostgreSQL and MySQL
# drivers (Go module proxy), dbmate (its
# released binary from npm) and Flyway (Maven Central, with a small Java front end). Into
# $CACHE_DIR/bin; a tool whose pinned files have not changed is skipped.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

mkdir -p "$BIN_DIR" "$CACHE_DIR/src"

# stale TOOL: true when TOOL's pinned files changed since its last install (and records the new stamp
# in $want for done_with).
stale() {
  want=$(cd "$HACK_DIR/tools/$1" && find . -type f | sort | xargs cat | sha256sum | cut -c1-16)
  [[ ! -f $BIN_DIR/.$1.stamp || $(cat "$BIN_DIR/.$1.stamp") != "$want" ]]
}
done_with() { echo "$want" >"$BIN_DIR/.$1.stamp"; log "$1: installed"; }

if stale golang-migrate; then
  log "golang-migrate: building"
  work=$CACHE_DIR/src/golang-migrate
  rm -rf "$work" && mkdir -p "$work" && cp "$HACK_DIR"/tools/golang-migrate/go.* "$work/"
  version=$(sed -n 's|^require github.com/golang-migrate/migrate/v4 v||p' "$work/go.mod")
  (cd "$work" && go build -mod=mod -trimpath -ldflags "-s -w -X main.Version=$version" -tags "postgres mysql file" \
    -o "$BIN_DIR/golang-migrate" github.com/golang-migrate/migrate/v4/cmd/migrate)
  done_with golang-migrate
fi

if stale dbmate; then
  command -v npm >/dev/null || die "npm is needed to install dbmate (Debian: apt-get install npm)"
  log "dbmate: installing from npm"
  work=$CACHE_DIR/src/dbmate
  rm -rf "$work" && mkdir -p "$work" && cp "$HACK_DIR"/tools/dbmate/package*.json "$work/"
  # npm ci would want the lock entries of every platform's binary; install follows the lock as it is
  (cd "$work" && npm install --no-audit --no-fund --no-save --cache "$CACHE_DIR/npm-cache" >/dev/null)
  ln -sf "$work/node_modules/.bin/dbmate" "$BIN_DIR/dbmate"
  done_with dbmate
fi

if stale flyway; then
  if ! command -v mvn >/dev/null || ! command -v javac >/dev/null; then
    die "Maven and a JDK 17+ are needed for Flyway (Debian: apt-get install maven default-jdk-headless)"
  fi
  log "flyway: fetching its jars from Maven Central"
  work=$CACHE_DIR/src/flyway
  rm -rf "$work" && mkdir -p "$work/classes" && cp "$HACK_DIR"/tools/flyway/* "$work/"
  (cd "$work" && mvn -q -B -Dmaven.repo.local="$CACHE_DIR/m2" dependency:copy-dependencies -DoutputDirectory=lib &&
    javac -cp "lib/*" -d classes FlywayTool.java)
  cat >"$BIN_DIR/flyway-tool" <<SCRIPT
#!/bin/sh
exec java -cp "$work/classes:$work/lib/*" FlywayTool "\$@"
SCRIPT
  chmod +x "$BIN_DIR/flyway-tool"
  done_with flyway
fi
