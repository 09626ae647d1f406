# Shell helpers for the test scripts that drive a real `kiln serve`
# (tests/browser/run.sh, tests/contract/run.sh). Source it after setting
# `work` (a temporary directory holding kiln.log) and `artifacts` (where
# kiln's log is kept); start kiln in the background into "$work/kiln.log"
# and set `kiln_pid`.

kiln_pid=""

# A TCP port on loopback that nothing listens on now.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# A random admin token.
random_token() {
  od -An -N16 -tx1 /dev/urandom | tr -d ' \n'
}

# Stops kiln (TERM, then KILL after 5 s), keeps its log, removes `work`.
# Meant for `trap stop_kiln EXIT`.
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

# Waits until kiln at URL answers /health; fails, showing its log, if it
# exits first. NAME prefixes the message.
wait_for_kiln() {
  local name="$1" url="$2"
  for _ in $(seq 1 100); do
    curl -fsS "$url/health" >/dev/null 2>&1 && return 0
    if ! kill -0 "$kiln_pid" 2>/dev/null; then
      echo "$name: kiln did not start:" >&2
      tail -n 30 "$work/kiln.log" >&2
      return 1
    fi
    sleep 0.2
  done
  echo "$name: kiln did not answer $url/health" >&2
  return 1
}
