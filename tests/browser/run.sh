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
# shellcheck source=../common/kiln.sh
source "$repo/tests/common/kiln.sh"
port="$(free_port)"
token="$(random_token)"
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
wait_for_kiln tests/browser "$url"

status=0
KILN_URL="$url" KILN_TOKEN="$token" KILN_CHROMIUM="$chromium_bin" KILN_ARTIFACTS="$artifacts" \
  node --test --test-concurrency=1 "$here/scenarios.test.js" || status=$?
if ((status != 0)); then
  echo "tests/browser: failed; kiln's log (last 40 lines):" >&2
  tail -n 40 "$work/kiln.log" >&2
fi
exit "$status"
