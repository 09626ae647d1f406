#!/usr/bin/env bash
# Installs sushy-tools (the Redfish emulator tests/bmc_redfish.rs drives)
# into a virtualenv cached outside the checkout, keyed by its pinned
# version, and prints the venv's path. Idempotent: a second call only
# prints the path.
set -euo pipefail
version=2.2.0
venv="${XDG_CACHE_HOME:-$HOME/.cache}/kiln/sushy-tools-$version"
if [[ ! -x "$venv/bin/sushy-emulator" ]]; then
  echo "tests/bmc: installing sushy-tools $version into $venv" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "sushy-tools==$version" bcrypt >&2
fi
echo "$venv"
