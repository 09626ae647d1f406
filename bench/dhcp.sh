#!/usr/bin/env bash
# DHCP storm benchmark: the same perfdhcp load against kiln's DHCP server,
# dnsmasq and kea-dhcp4 (memfile), one after another, RUNS times each, in
# two network namespaces joined by a veth pair that this script creates and
# always removes. Traffic never leaves those namespaces.
#
# Load: NODES known machines (the same MAC list for all three servers, each
# holding the same fixed-address reservations), perfdhcp in relay mode
# (giaddr set) offering RATE exchanges/s for SECONDS. Reported: 4-way
# (DORA) exchanges per second as perfdhcp measures them, min/median/max,
# and kiln's median over each peer's.
#
# Usage: bench/dhcp.sh [--kiln PATH] [--nodes N] [--rate R] [--seconds S] [--runs K] [--json FILE]
set -euo pipefail
cd "$(dirname "$0")/.."

KILN=target/release/kiln
NODES=1000
RATE=20000
SECONDS_PER_RUN=5
RUNS=3
JSON=""
while (($#)); do
  case "$1" in
    --kiln) KILN=$2; shift 2 ;;
    --nodes) NODES=$2; shift 2 ;;
    --rate) RATE=$2; shift 2 ;;
    --seconds) SECONDS_PER_RUN=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --json) JSON=$2; shift 2 ;;
    *) echo "bench/dhcp.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

for tool in perfdhcp dnsmasq kea-dhcp4 ip; do
  command -v "$tool" >/dev/null || {
    echo "bench/dhcp.sh: $tool is missing (apt-get install -y kea-admin kea-dhcp4-server dnsmasq-base iproute2)" >&2
    exit 1
  }
done
[ -x "$KILN" ] || { echo "bench/dhcp.sh: no kiln binary at $KILN (cargo build --release)" >&2; exit 1; }

TAG="kb$$"
SRV="${TAG}s"; CLI="${TAG}c"; VS="${TAG}a"; VC="${TAG}b"
SERVER_IP=10.213.0.1; CLIENT_IP=10.213.0.2
WORK=$(mktemp -d)
SERVER_PID=""

cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
  ip netns del "$SRV" 2>/dev/null || true
  ip netns del "$CLI" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

ip netns add "$SRV"
ip netns add "$CLI"
ip link add "$VS" type veth peer name "$VC"
ip link set "$VS" netns "$SRV"
ip link set "$VC" netns "$CLI"
ip -n "$SRV" addr add "$SERVER_IP/16" dev "$VS"
ip -n "$CLI" addr add "$CLIENT_IP/16" dev "$VC"
for ns in "$SRV" "$CLI"; do ip -n "$ns" link set lo up; done
ip -n "$SRV" link set "$VS" up
ip -n "$CLI" link set "$VC" up

# The same machines for everyone: MAC i -> 10.213.(1 + i/250).(1 + i%250).
mac_of() { printf '52:54:%02x:%02x:%02x:%02x' $(($1 >> 24 & 255)) $(($1 >> 16 & 255)) $(($1 >> 8 & 255)) $(($1 & 255)); }
ip_of() { printf '10.213.%d.%d' $((1 + $1 / 250)) $((1 + $1 % 250)); }

: >"$WORK/macs.txt"
: >"$WORK/dnsmasq-hosts"
{
  echo '[[network]]'
  echo 'name = "bench"'
  echo 'subnet = "10.213.0.0/16"'
  echo "router = \"$SERVER_IP\""
  echo "dns = [\"$SERVER_IP\"]"
  echo 'domain = "bench.example"'
  echo 'pool = ["10.213.240.1", "10.213.250.250"]'
} >"$WORK/cluster.toml"
kea_reservations=()
for ((i = 0; i < NODES; i++)); do
  mac=$(mac_of "$i"); addr=$(ip_of "$i")
  echo "$mac" >>"$WORK/macs.txt"
  echo "$mac,$addr" >>"$WORK/dnsmasq-hosts"
  kea_reservations+=("{\"hw-address\":\"$mac\",\"ip-address\":\"$addr\"}")
  printf '\n[[node]]\nname = "b%d.bench.example"\nbootenv = "local"\ninterfaces = [{ mac = "%s", ip = "%s" }]\n' "$i" "$mac" "$addr" >>"$WORK/cluster.toml"
done
(IFS=,; cat >"$WORK/kea.json" <<JSON
{"Dhcp4": {
  "interfaces-config": {"interfaces": ["$VS"], "dhcp-socket-type": "udp"},
  "lease-database": {"type": "memfile", "persist": false},
  "valid-lifetime": 3600,
  "subnet4": [{"id": 1, "subnet": "10.213.0.0/16",
    "pools": [{"pool": "10.213.240.1 - 10.213.250.250"}],
    "option-data": [{"name": "routers", "data": "$SERVER_IP"}],
    "reservations": [${kea_reservations[*]}]}],
  "loggers": [{"name": "kea-dhcp4", "severity": "ERROR", "output_options": [{"output": "$WORK/kea.log"}]}]
}}
JSON
)

wait_for_port() { # netns, udp port
  for _ in $(seq 1 100); do
    ip netns exec "$1" ss -Hlun "sport = :$2" | grep -q . && return 0
    sleep 0.1
  done
  echo "bench/dhcp.sh: server in $1 never bound udp/$2" >&2
  return 1
}

start_server() {
  case "$1" in
    kiln)
      KILN_DATABASE__URL="sqlite://$WORK/kiln.db?mode=rwc" \
      KILN_HTTP__BIND="127.0.0.1:0" \
      KILN_DHCP__ENABLED=true KILN_DHCP__INTERFACE="$VS" KILN_DHCP__ADDRESS=0.0.0.0 KILN_DHCP__PORT=67 \
      KILN_LOG__FILTER=warn \
        ip netns exec "$SRV" "$KILN" serve --cluster "$WORK/cluster.toml" >"$WORK/kiln.log" 2>&1 &
      ;;
    dnsmasq)
      ip netns exec "$SRV" dnsmasq --no-daemon --port=0 --interface="$VS" --bind-interfaces \
        --dhcp-range=10.213.240.1,10.213.250.250,255.255.0.0,1h --dhcp-hostsfile="$WORK/dnsmasq-hosts" \
        --dhcp-lease-max=1000000 --leasefile-ro --no-ping --quiet-dhcp --log-facility=- >"$WORK/dnsmasq.log" 2>&1 &
      ;;
    kea)
      mkdir -p /run/kea
      ip netns exec "$SRV" kea-dhcp4 -c "$WORK/kea.json" >"$WORK/kea.out" 2>&1 &
      ;;
  esac
  SERVER_PID=$!
  wait_for_port "$SRV" 67
}

stop_server() {
  kill "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
}

one_run() { # prints exchanges/s
  local out
  out=$(ip netns exec "$CLI" perfdhcp -4 -l "$CLIENT_IP" -r "$RATE" -p "$SECONDS_PER_RUN" \
    -M "$WORK/macs.txt" "$SERVER_IP" 2>&1 || true)
  awk '/^Rate:/ {print $2; found=1} END {if (!found) print 0}' <<<"$out"
}

declare -A RESULTS
for server in kiln dnsmasq kea; do
  start_server "$server"
  # A short warm-up so every server has its reservations loaded and hot.
  ip netns exec "$CLI" perfdhcp -4 -l "$CLIENT_IP" -r 500 -p 1 -M "$WORK/macs.txt" "$SERVER_IP" >/dev/null 2>&1 || true
  rates=()
  for ((k = 0; k < RUNS; k++)); do rates+=("$(one_run)"); done
  stop_server
  RESULTS[$server]="${rates[*]}"
done

stats() { tr ' ' '\n' <<<"$1" | sort -g | awk '{a[NR]=$1} END {printf "%.1f %.1f %.1f", a[1], a[int((NR+1)/2)], a[NR]}'; }
median() { stats "$1" | awk '{print $2}'; }

printf '%-8s  %10s  %10s  %10s   (DORA exchanges/s, %d runs, %d known MACs, offered %d/s)\n' server min median max "$RUNS" "$NODES" "$RATE"
for server in kiln dnsmasq kea; do
  read -r lo mid hi <<<"$(stats "${RESULTS[$server]}")"
  printf '%-8s  %10s  %10s  %10s\n' "$server" "$lo" "$mid" "$hi"
done
k=$(median "${RESULTS[kiln]}"); d=$(median "${RESULTS[dnsmasq]}"); e=$(median "${RESULTS[kea]}")
vs_d=$(awk -v a="$k" -v b="$d" 'BEGIN {printf "%.3f", (b > 0 ? a / b : 0)}')
vs_e=$(awk -v a="$k" -v b="$e" 'BEGIN {printf "%.3f", (b > 0 ? a / b : 0)}')
faster=$(awk -v a="$d" -v b="$e" 'BEGIN {print (a > b ? a : b)}')
ratio=$(awk -v a="$k" -v b="$faster" 'BEGIN {printf "%.3f", (b > 0 ? a / b : 0)}')
echo "# kiln/dnsmasq=$vs_d kiln/kea=$vs_e"
if [ -n "$JSON" ]; then
  printf '{"name":"dhcp","runs":%d,"nodes":%d,"offered_rate":%d,"kiln":[%s],"dnsmasq":[%s],"kea":[%s],"kiln_over_dnsmasq":%s,"kiln_over_kea":%s,"ratio":%s}\n' \
    "$RUNS" "$NODES" "$RATE" "$(tr ' ' , <<<"${RESULTS[kiln]}")" "$(tr ' ' , <<<"${RESULTS[dnsmasq]}")" \
    "$(tr ' ' , <<<"${RESULTS[kea]}")" "$vs_d" "$vs_e" "$ratio" >"$JSON"
fi
echo "RESULT dhcp ratio=$ratio target=>=1.0"
