#!/usr/bin/env bash
# A real single-node Kubernetes as plain processes (no Docker, no registry):
# etcd, kube-apiserver (RBAC), kube-controller-manager, kube-scheduler,
# containerd+runc, kubelet, kube-proxy (iptables) and CoreDNS (no upstream).
#
#   hack/cluster.sh up       start what is not running (idempotent), wait until usable
#   hack/cluster.sh down     stop everything and remove all it made
#   hack/cluster.sh status   what runs, and the node's state
#
# Writes the admin kubeconfig to $CACHE_DIR/cluster/kubeconfig.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

C=$CLUSTER_DIR
PKI=$C/pki
PIDS=$RUN_DIR/pids
LOGS=$C/logs
KUBECTL=(kubectl_ --request-timeout=20s)
COMPONENTS=(etcd kube-apiserver containerd kube-controller-manager kube-scheduler kubelet kube-proxy coredns postgres)

# put FILE: write stdin to FILE only if it differs (kube-proxy exits when its config file changes).
put() {
  local tmp
  tmp=$(mktemp "$1.XXXX")
  cat >"$tmp"
  if cmp -s "$tmp" "$1"; then rm -f "$tmp"; else mv "$tmp" "$1"; fi
}

kubectl_() { "$BIN_DIR/kubectl" --kubeconfig "$KUBECONFIG_FILE" "$@"; }

# running NAME: its recorded pid is alive and still that program (pids are reused after a reboot).
running() {
  [[ -f $PIDS/$1.pid ]] || return 1
  local pid
  pid=$(cat "$PIDS/$1.pid")
  [[ -r /proc/$pid/cmdline ]] && grep -qaF -- "$1" "/proc/$pid/cmdline"
}

# start NAME CMD...: run CMD in the background unless NAME already runs.
start() {
  local name=$1; shift
  if running "$name"; then return; fi
  log "starting $name"
  setsid "$@" >>"$LOGS/$name.log" 2>&1 </dev/null &
  echo $! >"$PIDS/$name.pid"
}

# wait_for WHAT SECONDS CMD...: until CMD succeeds, saying what is awaited.
wait_for() {
  local what=$1 limit=$2; shift 2
  local start=$SECONDS
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS - start > limit)); then
      die "gave up after ${limit}s waiting for $what (logs: $LOGS)"
    fi
    if (((SECONDS - start) % 15 == 14)); then log "still waiting for $what"; fi
    sleep 1
  done
}

# --- certificates and kubeconfigs -----------------------------------------------------------

# sign NAME CN ORG EXT: key and certificate signed by the cluster CA.
sign() {
  local name=$1 cn=$2 org=$3 ext=$4 subj="/CN=$2"
  [[ -f $PKI/$name.crt ]] && return
  [[ -n $org ]] && subj="/O=$org/CN=$cn"
  openssl req -new -newkey rsa:2048 -nodes -keyout "$PKI/$name.key" -out "$PKI/$name.csr" -subj "$subj" 2>/dev/null
  printf '%s\n' "$ext" >"$PKI/$name.ext"
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
    -out "$PKI/$name.crt" -days 365 -extfile "$PKI/$name.ext" 2>/dev/null
  rm -f "$PKI/$name.csr" "$PKI/$name.ext"
}

make_pki() {
  mkdir -p "$PKI" && chmod 700 "$PKI"
  if [[ ! -f $PKI/ca.crt ]]; then
    log "creating the cluster CA and certificates"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout "$PKI/ca.key" -out "$PKI/ca.crt" -days 365 \
      -subj "/CN=initpipeline-local-ca" 2>/dev/null
    openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
    openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
  fi
  local client="keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
  local first_service_ip=${SERVICE_CIDR%.0/16}.1
  sign apiserver kube-apiserver "" "keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost,IP:127.0.0.1,IP:$NODE_IP,IP:$first_service_ip"
  sign kubelet-server "$NODE_NAME" "" "keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=DNS:$NODE_NAME,IP:$NODE_IP,IP:127.0.0.1"
  sign admin initpipeline-admin system:masters "$client"
  sign apiserver-kubelet-client kube-apiserver-kubelet-client system:masters "$client"
  sign controller-manager system:kube-controller-manager "" "$client"
  sign scheduler system:kube-scheduler "" "$client"
  sign kube-proxy system:kube-proxy "" "$client"
  sign kubelet "system:node:$NODE_NAME" system:nodes "$client"
  sign coredns initpipeline:coredns "" "$client"
}

# kubeconfig NAME CERT: a kubeconfig for a client certificate.
kubeconfig() {
  put "$C/$1.kubeconfig" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: initpipeline-local
  cluster: {server: "https://$NODE_IP:6443", certificate-authority: "$PKI/ca.crt"}
users:
- name: $2
  user: {client-certificate: "$PKI/$2.crt", client-key: "$PKI/$2.key"}
contexts:
- name: initpipeline-local
  context: {cluster: initpipeline-local, user: $2}
current-context: initpipeline-local
KUBECONFIG
}

# --- host networking ------------------------------------------------------------------------

# make_cgroup_root: the kubelet wants its cgroupRoot to exist in every controller.
make_cgroup_root() {
  local ctl dir
  for ctl in /sys/fs/cgroup/*/; do
    [[ -f ${ctl}cgroup.procs && ! -L ${ctl%/} ]] || continue
    dir=$ctl${CGROUP_ROOT#/}
    [[ -d $dir ]] && continue
    mkdir "$dir" || continue
    # a cpuset cgroup takes no tasks until it has cpus and mems
    if [[ -f ${ctl}cpuset.cpus ]]; then
      cat "${ctl}cpuset.cpus" >"$dir/cpuset.cpus"
      cat "${ctl}cpuset.mems" >"$dir/cpuset.mems"
    fi
  done
}

setup_host() {
  mount --make-rshared / 2>/dev/null || true
  record_iptables
  make_cgroup_root
  sysctl -qw net.ipv4.ip_forward=1
  sysctl -qw net.bridge.bridge-nf-call-iptables=1 2>/dev/null || modprobe br_netfilter 2>/dev/null || true
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link add "$BRIDGE" type bridge
  fi
  # (no `| grep -q` under pipefail: grep's early exit can fail the pipeline with SIGPIPE)
  [[ $(ip -o -4 addr show dev "$BRIDGE") == *"inet $NODE_IP/"* ]] || ip addr add "$NODE_IP/16" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  # Nothing from the pod network may leave the machine: only pod and service
  # addresses, and the node's own, are allowed as destinations.
  if ! iptables -nL INITPIPELINE-GUARD >/dev/null 2>&1; then
    iptables -N INITPIPELINE-GUARD
    iptables -A INITPIPELINE-GUARD -d "$POD_CIDR" -j RETURN
    iptables -A INITPIPELINE-GUARD -d "$SERVICE_CIDR" -j RETURN
    iptables -A INITPIPELINE-GUARD -j DROP
  fi
  iptables -C FORWARD -s "$POD_CIDR" -j INITPIPELINE-GUARD 2>/dev/null \
    || iptables -I FORWARD 1 -s "$POD_CIDR" -j INITPIPELINE-GUARD
}

# --- components -----------------------------------------------------------------------------

write_configs() {
  mkdir -p "$C/cni/net.d" "$C/cni/ipam" "$C/containerd" "$C/kubelet" "$C/pod-logs"
  put "$C/resolv.conf" </dev/null  # pods must never inherit the host's resolver
  put "$C/audit-policy.yaml" <"$HACK_DIR/audit/policy.yaml"
  put "$C/cni/net.d/10-initpipeline.conflist" <<CNI
{
  "cniVersion": "1.0.0",
  "name": "initpipeline",
  "plugins": [
    {"type": "bridge", "bridge": "$BRIDGE", "isGateway": true, "ipMasq": false, "hairpinMode": true,
     "ipam": {"type": "host-local", "dataDir": "$C/cni/ipam", "routes": [{"dst": "0.0.0.0/0"}],
              "ranges": [[{"subnet": "$POD_CIDR", "rangeStart": "198.18.1.1", "rangeEnd": "198.18.255.254",
                           "gateway": "$NODE_IP"}]]}}
  ]
}
CNI
  put "$C/containerd/config.toml" <<TOML
version = 2
root = "$C/containerd/root"
state = "$CONTAINERD_STATE"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
                    "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "$CONTAINERD_SOCK"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # This sandbox may not lower oom_score_adj (the kubelet asks -998 for pod
  # sandboxes): cap it at containerd's own, as rootless setups do.
  restrict_oom_score_adj = true
  # the pods' network namespaces live in our state folder, not among the host's in /var/run/netns
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$C/cni/net.d"
TOML
  put "$C/kubelet-config.yaml" <<KUBELET
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: "$PKI/ca.crt"}
authorization: {mode: Webhook}
address: $NODE_IP
healthzBindAddress: 127.0.0.1
readOnlyPort: 0
tlsCertFile: "$PKI/kubelet-server.crt"
tlsPrivateKeyFile: "$PKI/kubelet-server.key"
containerRuntimeEndpoint: "unix://$CONTAINERD_SOCK"
cgroupDriver: cgroupfs
# pods get a cgroup tree of their own, so that cluster.sh down touches no other kubelet's (kind uses /kubelet)
cgroupRoot: $CGROUP_ROOT
failCgroupV1: false
failSwapOn: false
clusterDNS: [$DNS_SERVICE_IP]
clusterDomain: cluster.local
resolvConf: "$C/resolv.conf"
podLogsDir: "$C/pod-logs"
# containerd 1.6 does not pin images: never collect or evict the preloaded ones.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "0%", nodefs.available: "0%", nodefs.inodesFree: "0%", imagefs.available: "0%"}
serializeImagePulls: false
maxPods: 110
KUBELET
  put "$C/kube-proxy-config.yaml" <<PROXY
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: "$C/kube-proxy.kubeconfig"}
hostnameOverride: $NODE_NAME
mode: iptables
clusterCIDR: $POD_CIDR
bindAddress: $NODE_IP
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
iptables: {localhostNodePorts: false}
nodePortAddresses: ["$NODE_IP/32"]
# the sandbox's conntrack sysctls are read-only
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
PROXY
  put "$C/Corefile" <<COREFILE
cluster.local:53 in-addr.arpa:53 ip6.arpa:53 {
    bind $NODE_IP
    errors
    health 127.0.0.1:18080
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig $C/coredns.kubeconfig initpipeline-local
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    cache 5
}
COREFILE
}

start_control_plane() {
  start etcd "$BIN_DIR/etcd" --name initpipeline --data-dir "$C/etcd" \
    --listen-client-urls http://127.0.0.1:23790 --advertise-client-urls http://127.0.0.1:23790 \
    --listen-peer-urls http://127.0.0.1:23800 --initial-advertise-peer-urls http://127.0.0.1:23800 \
    --initial-cluster initpipeline=http://127.0.0.1:23800 --listen-metrics-urls http://127.0.0.1:23810 \
    --unsafe-no-fsync --quota-backend-bytes 2147483648
  wait_for "etcd" 60 curl -fsS http://127.0.0.1:23790/health
  start kube-apiserver "$BIN_DIR/kube-apiserver" --etcd-servers http://127.0.0.1:23790 \
    --advertise-address "$NODE_IP" --bind-address "$NODE_IP" --secure-port 6443 \
    --service-cluster-ip-range "$SERVICE_CIDR" --authorization-mode Node,RBAC \
    --client-ca-file "$PKI/ca.crt" --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
    --kubelet-client-certificate "$PKI/apiserver-kubelet-client.crt" \
    --kubelet-client-key "$PKI/apiserver-kubelet-client.key" --kubelet-preferred-address-types InternalIP \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
    --enable-admission-plugins NodeRestriction --allow-privileged=true --profiling=false --v=1 \
    --audit-policy-file "$C/audit-policy.yaml" --audit-log-path "$C/audit.log" --audit-log-format json \
    --audit-log-maxsize 200 --audit-log-maxbackup 1 --audit-log-mode batch --audit-log-batch-max-wait 1s
  wait_for "kube-apiserver" 120 "${KUBECTL[@]}" get --raw /readyz
  start kube-controller-manager "$BIN_DIR/kube-controller-manager" --kubeconfig "$C/controller-manager.kubeconfig" \
    --authentication-kubeconfig "$C/controller-manager.kubeconfig" \
    --authorization-kubeconfig "$C/controller-manager.kubeconfig" \
    --use-service-account-credentials --service-account-private-key-file "$PKI/sa.key" \
    --root-ca-file "$PKI/ca.crt" --cluster-signing-cert-file "$PKI/ca.crt" --cluster-signing-key-file "$PKI/ca.key" \
    --service-cluster-ip-range "$SERVICE_CIDR" --leader-elect=false --bind-address 127.0.0.1 --profiling=false --v=1
  start kube-scheduler "$BIN_DIR/kube-scheduler" --kubeconfig "$C/scheduler.kubeconfig" \
    --authentication-kubeconfig "$C/scheduler.kubeconfig" --authorization-kubeconfig "$C/scheduler.kubeconfig" \
    --leader-elect=false --bind-address 127.0.0.1 --profiling=false --v=1
}

start_node() {
  mkdir -p "$RUN_DIR/containerd"
  start containerd containerd --config "$C/containerd/config.toml"
  wait_for "containerd" 60 ctr --address "$CONTAINERD_SOCK" version
  bash "$HACK_DIR/images.sh"
  start kubelet "$BIN_DIR/kubelet" --config "$C/kubelet-config.yaml" --kubeconfig "$C/kubelet.kubeconfig" \
    --root-dir "$C/kubelet" --hostname-override "$NODE_NAME" --node-ip "$NODE_IP" --v=1
  start kube-proxy "$BIN_DIR/kube-proxy" --config "$C/kube-proxy-config.yaml" --v=1
}

apply_addons() {
  "${KUBECTL[@]}" apply -f - >/dev/null <<ADDONS
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "initpipeline:coredns"}
rules:
- apiGroups: [""]
  resources: [endpoints, services, pods, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "initpipeline:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "initpipeline:coredns"}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: "initpipeline:coredns"}]
---
# CoreDNS runs on the host; pods reach it through this Service like any cluster DNS.
apiVersion: v1
kind: Service
metadata: {name: kube-dns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  clusterIP: $DNS_SERVICE_IP
  ports:
  - {name: dns, port: 53, protocol: UDP, targetPort: 53}
  - {name: dns-tcp, port: 53, protocol: TCP, targetPort: 53}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: kube-dns-host
  namespace: kube-system
  labels: {kubernetes.io/service-name: kube-dns, endpointslice.kubernetes.io/managed-by: initpipeline-cluster}
addressType: IPv4
endpoints: [{addresses: ["$NODE_IP"], conditions: {ready: true}}]
ports:
- {name: dns, port: 53, protocol: UDP}
- {name: dns-tcp, port: 53, protocol: TCP}
ADDONS
  start coredns "$BIN_DIR/coredns" -conf "$C/Corefile"
}

node_ready() {
  [[ $("${KUBECTL[@]}" get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}') == True ]]
}

dns_answers() {
  # an in-cluster name, asked through the DNS Service's address as pods ask it
  [[ $(dig +short +time=1 +tries=1 @"$DNS_SERVICE_IP" kubernetes.default.svc.cluster.local) == "${SERVICE_CIDR%.0/16}.1" ]]
}

up() {
  local begun=$SECONDS name alive=0
  for name in "${COMPONENTS[@]}"; do running "$name" && alive=1; done
  if ((alive == 0)) && [[ -d $C ]]; then
    # Left over from processes that were killed (a stopped session, a reboot): etcd may
    # have lost writes, so start from a clean state rather than trust it.
    log "no component of the last cluster runs; clearing its state first"
    down
    set -e -o pipefail
  elif ((alive)) && [[ $(cat "$C/kubernetes-version" 2>/dev/null) != "$KUBERNETES_VERSION" ]]; then
    # another minor's cluster: its state is not this one's to upgrade or downgrade
    log "the cluster runs Kubernetes $(cat "$C/kubernetes-version" 2>/dev/null || echo "of unknown version"), not" \
      "$KUBERNETES_VERSION: removing it first"
    down
    set -e -o pipefail
  fi
  mkdir -p "$C" "$LOGS" "$PIDS"
  echo "$KUBERNETES_VERSION" >"$C/kubernetes-version"
  bash "$HACK_DIR/install-deps.sh"
  bash "$HACK_DIR/build-tools.sh"
  setup_host
  make_pki
  for name in admin controller-manager scheduler kube-proxy kubelet coredns; do kubeconfig "$name" "$name"; done
  cp "$C/admin.kubeconfig" "$KUBECONFIG_FILE"
  write_configs
  start_control_plane
  start_node
  apply_addons
  wait_for "node $NODE_NAME to become Ready" 180 node_ready
  wait_for "the default service account" 60 "${KUBECTL[@]}" -n default get serviceaccount default
  wait_for "CoreDNS to answer through its Service" 60 dns_answers
  log "cluster is up (Kubernetes $KUBERNETES_VERSION) in $((SECONDS - begun))s; export KUBECONFIG=$KUBECONFIG_FILE"
}

# --- down -------------------------------------------------------------------------------------

stop_component() {
  local name=$1 pid
  [[ -f $PIDS/$name.pid ]] || return 0
  pid=$(cat "$PIDS/$name.pid")
  if running "$name"; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$PIDS/$name.pid"
}

# shim_pids: the runc shims of our containerd, from the pid files in its own state folder,
# each checked to still be a shim that talks to our socket.
shim_pids() {
  local file pid
  for file in "$CONTAINERD_STATE"/io.containerd.runtime.v2.task/*/*/shim.pid; do
    [[ -f $file ]] || continue
    pid=$(cat "$file")
    grep -qaF -- "$CONTAINERD_SOCK" "/proc/$pid/cmdline" 2>/dev/null && echo "$pid"
  done
}

# pod_cgroup_pids: processes in the kubelet's cgroup root, which is ours alone ($CGROUP_ROOT).
pod_cgroup_pids() {
  local ctl
  for ctl in /sys/fs/cgroup/*/; do
    [[ -d $ctl${CGROUP_ROOT#/} ]] && find "$ctl${CGROUP_ROOT#/}" -name cgroup.procs -exec cat {} + 2>/dev/null
  done | sort -u
}

# The iptables chains that exist before our first `up` are recorded. `down` removes only chains
# that appeared after that and that are named as kube-proxy and the kubelet name theirs (fixed
# names, or a kind and a 16-character hash), and the rules that jump to them.
KUBE_PROXY_CHAIN='^KUBE-(SERVICES|EXTERNAL-SERVICES|NODEPORTS|POSTROUTING|MARK-MASQ|MARK-DROP|FORWARD|PROXY-FIREWALL|FIREWALL|PROXY-CANARY|KUBELET-CANARY|IPTABLES-HINT|(SVC|SEP|SVL|EXT|FW)-[A-Z0-9]{16})$'
iptables_chains() {
  local tool=$1 table
  for table in nat filter mangle; do
    "$tool" -t "$table" -S 2>/dev/null | awk -v t="$table" '$1 == "-N" {print t, $2}'
  done
}

record_iptables() {
  local tool
  [[ -f $C/iptables-before ]] && return
  for tool in iptables ip6tables; do
    command -v "$tool" >/dev/null || continue
    iptables_chains "$tool" | sed "s/^/$tool /"
  done >"$C/iptables-before.tmp"
  mv "$C/iptables-before.tmp" "$C/iptables-before"
}

remove_our_iptables() {
  iptables -D FORWARD -s "$POD_CIDR" -j INITPIPELINE-GUARD 2>/dev/null
  iptables -F INITPIPELINE-GUARD 2>/dev/null
  iptables -X INITPIPELINE-GUARD 2>/dev/null
  if [[ ! -f $C/iptables-before ]]; then
    log "no record of the iptables chains before this cluster; leaving kube-proxy's chains alone"
    return
  fi
  local tool table chain rule entry
  for tool in iptables ip6tables; do
    command -v "$tool" >/dev/null || continue
    local ours=()
    while read -r table chain; do
      [[ $chain =~ $KUBE_PROXY_CHAIN ]] || continue
      grep -qxF -- "$tool $table $chain" "$C/iptables-before" || ours+=("$table $chain")
    done < <(iptables_chains "$tool")
    ((${#ours[@]})) || continue
    # their own rules first, then the rules elsewhere that jump to them (kube-proxy hooks into
    # PREROUTING, OUTPUT, FORWARD...), then the chains
    for entry in "${ours[@]}"; do read -r table chain <<<"$entry"; "$tool" -t "$table" -F "$chain" 2>/dev/null; done
    for entry in "${ours[@]}"; do
      read -r table chain <<<"$entry"
      "$tool" -t "$table" -S 2>/dev/null | awk -v c="$chain" '$1 == "-A" {
          for (i = 1; i < NF; i++) if ($i == "-j" && $(i + 1) == c) { print; break } }' |
        while read -r rule; do
          # iptables -S quotes a rule's words (comments have spaces) as a shell would read them
          eval "\"\$tool\" -t \"\$table\" -D ${rule#-A }" 2>/dev/null
        done
    done
    for entry in "${ours[@]}"; do read -r table chain <<<"$entry"; "$tool" -t "$table" -X "$chain" 2>/dev/null; done
  done
}

down() {
  set +e +o pipefail  # best effort: remove whatever is there, whatever is missing
  # The kubelet first (it would restart what we stop), then the pods, so that runc
  # containers, their network namespaces and mounts go with them.
  stop_component kubelet
  local shims=() pid
  if running containerd; then
    mapfile -t shims < <(shim_pids)
    for task in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks kill -s SIGKILL "$task" >/dev/null 2>&1 || true; done
  fi
  local i
  for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do stop_component "${COMPONENTS[i]}"; done
  for pid in "${shims[@]}"; do kill -9 "$pid" 2>/dev/null; done
  # Whatever still runs in a pod's cgroup (a container whose shim is gone) goes too.
  for _ in 1 2 3; do
    for pid in $(pod_cgroup_pids); do kill -9 "$pid" 2>/dev/null; done
    sleep 0.5
  done
  # Mounts under our own folders: the kubelet's (secrets, configmaps, emptyDirs) and containerd's
  # (rootfs, shm, and the pods' network namespaces, kept in its state folder).
  findmnt -rn -o TARGET | grep -E "^($C|$RUN_DIR)/" | sort -r | while read -r target; do
    umount -l "$target" 2>/dev/null || true
  done
  remove_our_iptables
  # The host ends of the pods' veths hang on our bridge; nothing else is touched.
  for veth in $(ip -o link show master "$BRIDGE" 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1); do
    ip link delete "$veth" 2>/dev/null
  done
  ip link delete "$BRIDGE" 2>/dev/null
  for ctl in /sys/fs/cgroup/*/; do
    [[ -d $ctl${CGROUP_ROOT#/} ]] || continue
    find "$ctl${CGROUP_ROOT#/}" -depth -type d -exec rmdir {} \; 2>/dev/null
  done
  rm -rf "$C" "$RUN_DIR/containerd" "$RUN_DIR/postgres" "$PIDS"
  log "cluster removed (images and binaries stay cached in $CACHE_DIR)"
}

status() {
  local name
  for name in "${COMPONENTS[@]}"; do
    if running "$name"; then echo "$name: running (pid $(cat "$PIDS/$name.pid"))"
    elif [[ $name != postgres ]]; then echo "$name: stopped"; fi
  done
  if running kube-apiserver; then "${KUBECTL[@]}" get nodes -o wide 2>/dev/null || true; fi
  echo "kubeconfig: $KUBECONFIG_FILE"
}

# restart-apiserver: stop our API server and start it again (the e2e test of the operator's recovery).
restart_apiserver() {
  running kube-apiserver || die "the cluster is not up"
  stop_component kube-apiserver
  start_control_plane
}

# kill-container ID: SIGKILL one container of our cluster's containerd, as a crash or an OOM kill would
# (the e2e test of a crashed operator replica). ID is a Pod's containerID, with or without containerd://.
kill_container() {
  local id=${1#containerd://}
  [[ $id =~ ^[0-9a-f]{64}$ ]] || die "kill-container: not a container id: ${1:-}"
  running containerd || die "the cluster is not up"
  ctr --address "$CONTAINERD_SOCK" -n k8s.io task kill --signal SIGKILL "$id"
}

case ${1:-} in
  up) up ;;
  down) down ;;
  status) status ;;
  restart-apiserver) restart_apiserver ;;
  kill-container) kill_container "${2:-}" ;;
  audit-log) cat "$C/audit.log" ;;
  *) echo "usage: $0 up|down|status|restart-apiserver|kill-container ID|audit-log" >&2; exit 2 ;;
esac
