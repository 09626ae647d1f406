#!/usr/bin/env bash
# DHCPv4 throughput: kiln's own DHCP server against dnsmasq and kea-dhcp4
# (memfile), under the same perfdhcp load, in two network namespaces this
# script creates and always removes (no packet leaves them).
#
#   bench/dhcp.sh [--seconds N] [--runs N] [--rate N] [--clients N] [--quick] [--json FILE]
#
# Prints min/median/max completed DORA exchanges per second for each server,
# kiln's ratio to each peer, and last `RESULT dhcp ratio=<x> target=>=1.0`
# with x = kiln's median over the faster peer's median. The machine is shared
# and noisy, so only ratios from the same invocation mean anything.
#
# Is it fair? Every client perfdhcp invents is a MAC kiln has never seen. For
# each one kiln hands out a pool address from memory (held 60 s on OFFER, the
# lease time on ACK), sends the ACK only once the lease row committed (the
# ACKs waiting together share one transaction) and then queues the MAC to
# discovery, which off the packet path creates a node in bootenv
# `sledgehammer` with its interface and node actor, binds and commits its
# discovery roles (noop jigs, but database rows all the same), and reloads
# the DHCP table's hosts from the database. dnsmasq and kea only
# record the lease (dnsmasq rewrites its lease file, kea appends to its CSV).
# So kiln does strictly more per new machine, and that extra work competes
# for the same two cores: this is the cost of kiln's real discovery path, not
# of a stripped-down mode. Every server gets the same subnet, pool, router
# option and lease time, persists its leases to a scratch directory, starts
# from an empty state before each run, and answers perfdhcp acting as a relay
# (giaddr set, unicast to the server), which all three treat alike.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
seconds=10 runs=3 rate=20000 clients=50000 json=""
while (($#)); do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --clients) clients=$2; shift 2 ;;
    --quick) seconds=2 runs=1; shift ;;
    --json) json=$2; shift 2 ;;
    -h | --help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "bench/dhcp.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[[ $EUID -eq 0 ]] || { echo "bench/dhcp.sh: needs root (network namespaces, port 67)" >&2; exit 1; }

srv_ns=kbench-dhcp-srv cli_ns=kbench-dhcp-cli srv_if=kbdhcp-srv cli_if=kbdhcp-cli
srv_ip=10.97.0.1 cli_ip=10.97.0.2 subnet=10.97.0.0/16 mask=255.255.0.0
pool_start=10.97.1.0 pool_end=10.97.240.255 # 61,440 addresses, more than --clients
lease=3600

# --- tools ------------------------------------------------------------------
missing=()
for pkg in kea-admin kea-dhcp4-server dnsmasq-base iproute2; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "bench/dhcp.sh: installing ${missing[*]}" >&2
  # The kea package would start a host-wide kea-dhcp4 where an init system
  # runs; this benchmark wants only its own, inside the namespace.
  before=$(pgrep -x kea-dhcp4 || true)
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=300 update -qq
  apt-get -o DPkg::Lock::Timeout=300 install -y -qq "${missing[@]}" >/dev/null
  for pid in $(pgrep -x kea-dhcp4 || true); do
    grep -qx "$pid" <<<"$before" || kill "$pid"
  done
fi
for tool in perfdhcp kea-dhcp4 dnsmasq ip ss; do
  command -v "$tool" >/dev/null || { echo "bench/dhcp.sh: $tool not found" >&2; exit 1; }
done
kiln=${KILN_BIN:-$repo/target/release/kiln}
if [[ ! -x $kiln ]]; then
  [[ -z ${KILN_BIN:-} ]] || { echo "bench/dhcp.sh: KILN_BIN=$kiln is not executable" >&2; exit 1; }
  (cd "$repo" && cargo build --release --quiet)
fi

# --- namespaces -------------------------------------------------------------
work=$(mktemp -d -t kiln-dhcp-bench.XXXXXX)
server_pid=""
stop_server() {
  [[ -n $server_pid ]] || return 0
  kill "$server_pid" 2>/dev/null || true
  local i
  for ((i = 0; i < 100; i++)); do
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -9 "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
}
remove_namespaces() {
  local ns
  for ns in "$srv_ns" "$cli_ns"; do
    # Anything still inside was started by this script (or a killed earlier
    # run of it): the names are this script's own.
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
  done
  # A run killed between creating the pair and moving it leaves it here.
  ip link del "$srv_if" 2>/dev/null || true
}
cleanup() {
  stop_server
  remove_namespaces
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

remove_namespaces
ip netns add "$srv_ns"
ip netns add "$cli_ns"
ip link add "$srv_if" type veth peer name "$cli_if"
ip link set "$srv_if" netns "$srv_ns"
ip link set "$cli_if" netns "$cli_ns"
ip -n "$srv_ns" addr add "$srv_ip/16" dev "$srv_if"
ip -n "$cli_ns" addr add "$cli_ip/16" dev "$cli_if"
for ns in "$srv_ns" "$cli_ns"; do
  ip -n "$ns" link set lo up
done
ip -n "$srv_ns" link set "$srv_if" up
ip -n "$cli_ns" link set "$cli_if" up
in_srv() { ip netns exec "$srv_ns" "$@"; }

# --- servers ----------------------------------------------------------------
# Each start_* launches one server on a fresh scratch directory $1.
start_kiln() {
  cat >"$1/cluster.toml" <<EOF
[[network]]
name = "bench"
subnet = "$subnet"
router = "$srv_ip"
pool = ["$pool_start", "$pool_end"]
lease_secs = $lease
EOF
  # Its HTTP API stays on the namespace's own loopback (127.0.0.1:3000).
  (cd "$1" && exec env KILN_DATABASE__URL="sqlite://$1/kiln.db?mode=rwc" \
    KILN_DHCP__ENABLED=true KILN_DHCP__INTERFACE="$srv_if" KILN_DHCP__ADDRESS="$srv_ip" \
    KILN_PROVISIONER__EXPORT_DIR="$1/export" KILN_LOG__FILTER=warn \
    ip netns exec "$srv_ns" "$kiln" serve --cluster "$1/cluster.toml") >"$1/server.log" 2>&1 &
  server_pid=$!
}
start_dnsmasq() {
  # --no-ping: kiln and kea offer without probing the address first.
  ip netns exec "$srv_ns" dnsmasq --no-daemon --no-resolv --no-hosts --port=0 --no-ping \
    --interface="$srv_if" --bind-interfaces --quiet-dhcp --log-facility=- \
    --dhcp-range="$pool_start,$pool_end,$mask,$lease" --dhcp-option=option:router,"$srv_ip" \
    --dhcp-lease-max=100000 --dhcp-leasefile="$1/leases" >"$1/server.log" 2>&1 &
  server_pid=$!
}
# UDP sockets, since perfdhcp's traffic is relayed unicast; multi-threading
# stays at kea 2.2's default (off), as dnsmasq and kiln each answer from one
# loop too.
start_kea() {
  cat >"$1/kea.json" <<EOF
{ "Dhcp4": {
  "interfaces-config": { "interfaces": ["$srv_if/$srv_ip"], "dhcp-socket-type": "udp" },
  "lease-database": { "type": "memfile", "persist": true, "name": "$1/leases.csv", "lfc-interval": 0 },
  "valid-lifetime": $lease,
  "subnet4": [ { "id": 1, "subnet": "$subnet",
    "pools": [ { "pool": "$pool_start - $pool_end" } ],
    "option-data": [ { "name": "routers", "data": "$srv_ip" } ] } ],
  "loggers": [ { "name": "kea-dhcp4", "severity": "WARN",
    "output_options": [ { "output": "$1/kea.log" } ] } ]
} }
EOF
  KEA_PIDFILE_DIR=$1 KEA_LOCKFILE_DIR=$1 ip netns exec "$srv_ns" kea-dhcp4 -c "$1/kea.json" >"$1/server.log" 2>&1 &
  server_pid=$!
}
wait_listening() {
  local i
  for ((i = 0; i < 300; i++)); do
    in_srv ss -Hlun 'sport = :67' | grep -q . && return 0
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "bench/dhcp.sh: $1 did not start; its log:" >&2
  tail -n 20 "$2/server.log" >&2
  exit 1
}

# --- load -------------------------------------------------------------------
# A DORA exchange counts once its ACK is back: REQUEST-ACK "received
# packets" over the seconds perfdhcp sends for. (perfdhcp 2.2's "Rate:" line is that same
# number, but older releases divided OFFERs instead, so it is not parsed.)
# The offered rate is above what any of the three sustains here, so each runs
# flat out and whatever it drops simply does not count. The same seed for the
# same run number gives every server the same sequence of client MACs.
measure() {
  local out="$1/perfdhcp.out" rc=0
  ip netns exec "$cli_ns" perfdhcp -4 -l "$cli_if" -r "$rate" -R "$clients" -p "$seconds" \
    -s "$2" "$srv_ip" >"$out" 2>&1 || rc=$?
  # 3 only says some exchanges were dropped, which overload is meant to do.
  if ((rc != 0 && rc != 3)); then
    echo "bench/dhcp.sh: perfdhcp failed ($rc):" >&2
    cat "$out" >&2
    exit 1
  fi
  # Leaves "exchanges/s DISCOVERs-sent ACKs-received" in $1/result.
  awk -v secs="$seconds" '
    /Statistics for: DISCOVER-OFFER/ { s = "do" } /Statistics for: REQUEST-ACK/ { s = "ra" }
    /^sent packets:/ { sent[s] = $3 } /^received packets:/ { got[s] = $3 }
    END { printf "%.1f %d %d\n", got["ra"] / secs, sent["do"], got["ra"] }
  ' "$out" >"$1/result"
}

servers=(kiln dnsmasq kea)
declare -A results
# Rounds interleave the servers so slow drift on a shared machine hits each alike.
for ((run = 1; run <= runs; run++)); do
  for name in "${servers[@]}"; do
    dir="$work/$name-$run"
    mkdir -p "$dir"
    "start_$name" "$dir"
    wait_listening "$name" "$dir"
    measure "$dir" "$run"
    read -r value sent acks <"$dir/result"
    stop_server
    # A server that panicked on the way down is a bug, whatever its rate.
    if grep -q "panicked" "$dir/server.log"; then
      echo "bench/dhcp.sh: $name panicked; its log:" >&2
      grep -A5 "panicked" "$dir/server.log" >&2
      exit 1
    fi
    results[$name]+="$value "
    printf 'run %d/%d  %-7s %9.1f exchanges/s  (%d ACKs for %d DISCOVERs sent)\n' \
      "$run" "$runs" "$name" "$value" "$acks" "$sent" >&2
  done
done

# --- report -----------------------------------------------------------------
stats() { tr ' ' '\n' <<<"${results[$1]}" | grep . | sort -g | awk '
  { v[NR] = $1 } END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; print v[1], m, v[NR] }'; }
read -r _ kmed _ <<<"$(stats kiln)"
best=0 rows=""
printf '%-8s %12s %12s %12s %14s\n' server min median max "kiln/server"
for name in "${servers[@]}"; do
  read -r lo med hi <<<"$(stats "$name")"
  ratio=$(awk -v k="$kmed" -v m="$med" 'BEGIN { printf "%.3f", (m > 0) ? k / m : 0 }')
  printf '%-8s %12.1f %12.1f %12.1f %14s\n' "$name" "$lo" "$med" "$hi" "$([[ $name == kiln ]] && echo - || echo "$ratio")"
  rows+="${rows:+,}{\"server\":\"$name\",\"min\":$lo,\"median\":$med,\"max\":$hi,\"kiln_ratio\":$ratio}"
  [[ $name == kiln ]] || best=$(awk -v a="$best" -v b="$med" 'BEGIN { print (b > a) ? b : a }')
done
ratio=$(awk -v k="$kmed" -v b="$best" 'BEGIN { printf "%.3f", (b > 0) ? k / b : 0 }')
if [[ -n $json ]]; then
  printf '{"name":"dhcp","ratio":%s,"target":">=1.0","rows":[%s]}\n' "$ratio" "$rows" >"$json"
fi
echo "RESULT dhcp ratio=$ratio target=>=1.0"
