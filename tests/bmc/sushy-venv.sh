#!/usr/bin/env bash
# Installs sushy-tools (the Redfish emulator tests/bmc_redfish.rs drives)
# into a virtualenv cached outside the checkout, keyed by its pinned
# version, and prints the venv's path. Idempotent, and safe to call from
# tests running at once: the install holds a lock, and the venv counts as
# installed only once its `.installed` mark is written at the end.
set -euo pipefail
version=2.2.0
cache="${XDG_CACHE_HOME:-$HOME/.cache}/kiln"
venv="$cache/sushy-tools-$version"
mkdir -p "$cache"
if [[ ! -e "$venv/.installed" ]]; then
  exec 9>"$venv.lock"
  flock 9
  if [[ ! -e "$venv/.installed" ]]; then
    echo "tests/bmc: installing sushy-tools $version into $venv" >&2
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "sushy-tools==$version" >&2
    touch "$venv/.installed"
  fi
fi
echo "$venv"
