#!/usr/bin/env bash
# Drives kiln's web UI in a real browser: builds kiln, starts `kiln serve
# --simulate` on a temporary SQLite database with an admin token on a free
# port and the seed cluster, runs the scenarios in headless chromium, leaves
# screenshots in target/browser-artifacts/, and always stops kiln.
#
# Needs Node.js 20+ with npm, curl, and Debian's chromium (installed here when
# missing and run as root). `npm ci` is run here when node_modules is stale.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cd "$repo"

chromium_bin="${KILN_CHROMIUM:-/usr/bin/chromium}"
if [[ ! -x "$chromium_bin" && "$chromium_bin" == /usr/bin/chromium && "$(id -u)" == 0 ]]; then
  echo "tests/browser: installing Debian's chromium"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=300 update -qq
  apt-get -o DPkg::Lock::Timeout=300 install -y -qq chromium >/dev/null
fi
if [[ ! -x "$chromium_bin" ]]; then
  echo "tests/browser: $chromium_bin is missing (apt-get install chromium)" >&2
  exit 1
fi
for tool in node npm curl; do
  command -v "$tool" >/dev/null || { echo "tests/browser: $tool is missing" >&2; exit 1; }
done

echo "tests/browser: building kiln"
cargo build --quiet --bin kiln
kiln="${CARGO_TARGET_DIR:-$repo/target}/debug/kiln"

if [[ ! -d "$here/node_modules/playwright-core" || "$here/package-lock.json" -nt "$here/node_modules/.package-lock.json" ]]; then
  echo "tests/browser: npm ci"
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
fi

work="$(mktemp -d)"
artifacts="$repo/target/browser-artifacts"
mkdir -p "$artifacts"
port="$(node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')"
token="$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
kiln_pid=""

stop_kiln() {
  if [[ -n "$kiln_pid" ]] && kill -0 "$kiln_pid" 2>/dev/null; then
    kill "$kiln_pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$kiln_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$kiln_pid" 2>/dev/null || true
    wait "$kiln_pid" 2>/dev/null || true
  fi
  cp "$work/kiln.log" "$artifacts/kiln.log" 2>/dev/null || true
  rm -rf "$work"
}
trap stop_kiln EXIT

export KILN_DATABASE__URL="sqlite://$work/kiln.db?mode=rwc"
export KILN_AUTH__ADMIN_TOKEN="$token"
export KILN_HTTP__BIND="127.0.0.1:$port"
export KILN_LOG__FORMAT=pretty
export NO_COLOR=1

# Simulated machines reboot, install and come back within about a second.
export KILN_SIM__REBOOT_DELAY_MS="${KILN_SIM__REBOOT_DELAY_MS:-500}"
export KILN_SIM__INSTALL_MS="${KILN_SIM__INSTALL_MS:-500}"
serve_args=(serve --cluster config/clusters/seed.toml --simulate)

"$kiln" apply "$here/roles.toml" >"$work/apply.log"
"$kiln" "${serve_args[@]}" >"$work/kiln.log" 2>&1 &
kiln_pid=$!

url="http://127.0.0.1:$port"
for _ in $(seq 1 100); do
  curl -fsS "$url/health" >/dev/null 2>&1 && break
  if ! kill -0 "$kiln_pid" 2>/dev/null; then
    echo "tests/browser: kiln did not start:" >&2
    tail -n 30 "$work/kiln.log" >&2
    exit 1
  fi
  sleep 0.2
done

status=0
KILN_URL="$url" KILN_TOKEN="$token" KILN_CHROMIUM="$chromium_bin" KILN_ARTIFACTS="$artifacts" \
  node --test --test-concurrency=1 "$here/scenarios.test.js" || status=$?
if ((status != 0)); then
  echo "tests/browser: failed; kiln's log (last 40 lines):" >&2
  tail -n 40 "$work/kiln.log" >&2
fi
exit "$status"
