#!/usr/bin/env bash
# The whole product in one go: brings up the local cluster (if it is not up),
# installs the operator with Helm, starts PostgreSQL on the host, applies the
# demo pipeline of examples/demo/ and shows its progress until it is Ready.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

NS=initpipeline-demo
KUBECTL=("$BIN_DIR/kubectl" --kubeconfig "$KUBECONFIG_FILE")
PG_DIR=$RUN_DIR/postgres  # the postgres user cannot reach into $HOME
PG_PORT=25432

bash "$HACK_DIR/cluster.sh" up
KUBECONFIG=$KUBECONFIG_FILE bash "$HACK_DIR/install-operator.sh"

start_postgres() {
  local bindir initdbs=(/usr/lib/postgresql/*/bin/initdb)
  bindir=$(dirname "${initdbs[-1]}")
  if [[ ! -f $PG_DIR/data/PG_VERSION ]]; then
    log "creating a PostgreSQL for the demo in $PG_DIR"
    mkdir -p "$PG_DIR/data" "$PG_DIR/sock"
    head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$PG_DIR/password"
    chmod 755 "$RUN_DIR"
    chown -R postgres "$PG_DIR"
    chmod 700 "$PG_DIR/data"
    runuser -u postgres -- "$bindir/initdb" -D "$PG_DIR/data" -U postgres --auth-local=trust \
      --auth-host=scram-sha-256 >/dev/null
    echo "host all all $POD_CIDR scram-sha-256" >>"$PG_DIR/data/pg_hba.conf"
  fi
  if ! runuser -u postgres -- "$bindir/pg_ctl" -D "$PG_DIR/data" status >/dev/null 2>&1; then
    log "starting PostgreSQL on $NODE_IP:$PG_PORT"
    runuser -u postgres -- "$bindir/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w start \
      -o "-p $PG_PORT -k $PG_DIR/sock -c listen_addresses=$NODE_IP" >/dev/null
    head -1 "$PG_DIR/data/postmaster.pid" >"$RUN_DIR/pids/postgres.pid"
  fi
  local psql=(runuser -u postgres -- "$bindir/psql" -h "$PG_DIR/sock" -p "$PG_PORT" -U postgres -qtA)
  if [[ -z $("${psql[@]}" -c "SELECT 1 FROM pg_roles WHERE rolname = 'shop'") ]]; then
    "${psql[@]}" -c "CREATE ROLE shop LOGIN PASSWORD '$(cat "$PG_DIR/password")'" >/dev/null
    "${psql[@]}" -c "CREATE DATABASE shop OWNER shop" >/dev/null
  fi
}
start_postgres

log "applying the demo to namespace $NS"
"${KUBECTL[@]}" create namespace "$NS" --dry-run=client -o yaml | "${KUBECTL[@]}" apply -f - >/dev/null
"${KUBECTL[@]}" -n "$NS" delete initpipeline shop --ignore-not-found --wait=true >/dev/null
"${KUBECTL[@]}" -n "$NS" apply -f - >/dev/null <<MANIFESTS
apiVersion: v1
kind: Secret
metadata: {name: shop-db}
stringData:
  url: postgresql://shop:$(cat "$PG_DIR/password")@postgres:5432/shop
---
# PostgreSQL runs on the host: a Service without a selector, pointed at the node.
apiVersion: v1
kind: Service
metadata: {name: postgres}
spec:
  ports: [{name: postgres, port: 5432, targetPort: $PG_PORT}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: postgres-host
  labels: {kubernetes.io/service-name: postgres}
addressType: IPv4
endpoints: [{addresses: ["$NODE_IP"], conditions: {ready: true}}]
ports: [{name: postgres, port: $PG_PORT, protocol: TCP}]
MANIFESTS
# restart the config server so that the wait step has something to wait for
"${KUBECTL[@]}" -n "$NS" delete deployment config-server --ignore-not-found >/dev/null
"${KUBECTL[@]}" -n "$NS" apply -f "$REPO_ROOT/examples/demo/services.yaml" >/dev/null
"${KUBECTL[@]}" -n "$NS" apply -f "$REPO_ROOT/examples/demo/pipeline.yaml" >/dev/null

IPL=(env "KUBECONFIG=$KUBECONFIG_FILE" "$CACHE_DIR/venv/bin/initpipeline")
log "following it: initpipeline status shop -n $NS -w (or kubectl initpipeline status ...)"
"${IPL[@]}" status shop -n "$NS" -w --timeout 300
log "each step's log, then the app's: initpipeline logs shop -n $NS"
"${IPL[@]}" logs shop -n "$NS"
log "done. KUBECONFIG=$KUBECONFIG_FILE; clean up with: make cluster-down"
