#!/usr/bin/env bash
# Builds kiln's discovery image for real sites: a busybox initrd whose init
# brings the network up, tells kiln the machine is alive and reports what it
# is (scripts/discovery/kiln-inventory), then waits to be power-cycled into
# its installer.
#
#   scripts/build-discovery-image.sh OUT.img [MODULE_DIR [MODULE...]]
#
# OUT.img      the initrd to write (gzip'd newc cpio). Serve it as the
#              sledgehammer bootenv's initrd, beside any kernel that has the
#              machine's NIC and disk drivers built in or given here.
# MODULE_DIR   a kernel's /lib/modules/<version> (with modules.dep), and
# MODULE...    the modules to load at boot, with their dependencies, e.g.
#              e1000e ixgbe igb ahci nvme. Without them the kernel's
#              built-in drivers must do.
#
# Needs: Debian's busybox-static (the image's only program), cpio, gzip.
# ipmitool and lldpd add the BMC address and the switch port to the report
# when their static binaries are put in /bin of the image; without them
# `bmc` and `lldp` are null.
#
# The contract with kiln is the kernel command line its sledgehammer
# bootenv renders (the same one tests/qemu/init reads):
#
#   kiln.node={{node_name}} kiln.token={{node_token}} kiln.api={{api_url}}
#
# The init PUTs {"alive":true} to {kiln.api}/api/v2/nodes/{kiln.node} and
# the inventory to .../inventory, each with `Authorization: Bearer
# {kiln.token}`, retrying until kiln answers 200.
set -euo pipefail

usage() { sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
[[ $# -ge 1 ]] || usage
out=$1
shift
moddir=${1:-}
[[ $# -gt 0 ]] && shift
modules=("$@")
here=$(cd "$(dirname "$0")" && pwd)
# Debian's busybox-static installs a static /bin/busybox.
busybox=/bin/busybox
[[ -x "$busybox" ]] || { echo "build-discovery-image: install busybox-static" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root="$work/root"
mkdir -p "$root"/{bin,dev,proc,sys,etc,tmp,run}
cp "$busybox" "$root/bin/busybox"
ln -s busybox "$root/bin/sh"
cp "$here/discovery/kiln-inventory" "$root/bin/kiln-inventory"

# Modules with their dependencies, and a modules.dep of just those.
load=""
if [[ -n "$moddir" ]]; then
  kver=$(basename "$moddir")
  mkdir -p "$root/lib/modules/$kver"
  declare -A wanted=()
  for m in "${modules[@]}"; do
    line=$(grep -E "/$m\.ko(\.[a-z]+)?:" "$moddir/modules.dep") \
      || { echo "build-discovery-image: no module $m in $moddir" >&2; exit 1; }
    for f in ${line/:/}; do wanted[$f]=1; done
  done
  for f in "${!wanted[@]}"; do
    mkdir -p "$root/lib/modules/$kver/$(dirname "$f")"
    cp "$moddir/$f" "$root/lib/modules/$kver/$f"
    grep -E "^$f:" "$moddir/modules.dep" >> "$root/lib/modules/$kver/modules.dep"
  done
  load="${modules[*]}"
fi

cat > "$root/etc/udhcpc.script" <<'SCRIPT'
#!/bin/sh
# udhcpc's hook: configures the leased address and the default route.
case "$1" in
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    [ -n "${router:-}" ] && ip route replace default via "${router%% *}" dev "$interface"
    ;;
esac
exit 0
SCRIPT

cat > "$root/init" <<INIT
#!/bin/busybox sh
# kiln's discovery image (scripts/build-discovery-image.sh).
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
say() { echo "kiln-discovery: \$*"; }
for m in $load; do modprobe "\$m" || say "cannot load \$m"; done
INIT
cat >> "$root/init" <<'INIT'
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    kiln.node=*) NODE=${arg#*=} ;;
    kiln.token=*) TOKEN=${arg#*=} ;;
    kiln.api=*) API=${arg#*=} ;;
  esac
done
if [ -z "${NODE:-}" ] || [ -z "${TOKEN:-}" ] || [ -z "${API:-}" ]; then
  say "missing kiln.node, kiln.token or kiln.api on the kernel command line"
  exec sh
fi
ip link set lo up
# The first interface with a device behind it that gets a lease.
leased=""
for dev in /sys/class/net/*; do
  [ -e "$dev/device" ] || continue
  nic=${dev##*/}
  ip link set "$nic" up
  if udhcpc -i "$nic" -f -q -n -t 10 -T 2 -s /etc/udhcpc.script; then
    leased=$nic
    break
  fi
done
[ -n "$leased" ] || { say "no DHCP lease on any interface"; exec sh; }

# PUT PATH BODY to this node with its token (busybox wget cannot PUT).
put() {
  hostport=${API#http://}
  hostport=${hostport%%/*}
  host=${hostport%:*}
  port=${hostport##*:}
  [ "$port" = "$hostport" ] && port=80
  length=$(printf '%s' "$2" | wc -c)
  while true; do
    status=$(printf 'PUT /api/v2/nodes/%s%s HTTP/1.0\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %s\r\n\r\n%s' \
      "$NODE" "$1" "$hostport" "$TOKEN" "$length" "$2" | nc -w 10 "$host" "$port" | head -n 1)
    say "PUT /api/v2/nodes/$NODE$1: $status"
    case "$status" in
      "HTTP/1."?" 200"*) return 0 ;;
      "HTTP/1."?" 4"*) return 1 ;;
    esac
    sleep 5
  done
}
put "" '{"alive":true}' || say "kiln refused the alive callback"
put /inventory "$(kiln-inventory)" || say "kiln refused the inventory"
say "reported; waiting to be power-cycled"
while true; do sleep 3600; done
INIT
chmod 755 "$root/init" "$root/etc/udhcpc.script" "$root/bin/kiln-inventory"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -9) > "$out"
echo "$out"
