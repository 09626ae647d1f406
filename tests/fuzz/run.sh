#!/usr/bin/env bash
# Fuzzes kiln's DHCP decode + answer path with libFuzzer on the stable
# toolchain (coverage instrumentation through stable codegen flags, no
# sanitizer), for a bounded time; exits non-zero on a crash, leaving the
# crashing input and the log in target/fuzz-artifacts/.
#
#   tests/fuzz/run.sh                 # 60 seconds
#   tests/fuzz/run.sh -runs=100000000 # a fixed number of executions
# Extra arguments go to libFuzzer (they replace the default time bound).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
# The instrumented release build of kiln takes minutes: it is kept outside
# the checkout, so the next run (a fresh clone in CI) rebuilds only what
# changed.
target_dir="${KILN_FUZZ_TARGET:-${XDG_CACHE_HOME:-$HOME/.cache}/kiln/fuzz-target}"
artifacts="$repo/target/fuzz-artifacts"
corpus="$artifacts/corpus"
mkdir -p "$corpus"

export RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module \
-Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
-Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares \
-Coverflow-checks=on"
# With --target, RUSTFLAGS reach the target's crates only, not build
# scripts and proc macros (which must not be instrumented).
host="$(rustc -vV | sed -n 's/^host: //p')"
echo "tests/fuzz: building the dhcp_answer target"
cargo build --quiet --release --manifest-path "$here/Cargo.toml" --target-dir "$target_dir" \
  --target "$host" --bin dhcp_answer

args=("$@")
((${#args[@]})) || args=(-max_total_time=60)
echo "tests/fuzz: fuzzing dhcp_answer (${args[*]})"
status=0
"$target_dir/$host/release/dhcp_answer" "$corpus" "$here/seeds" \
  -artifact_prefix="$artifacts/" -max_len=1500 -print_final_stats=1 "${args[@]}" \
  2>"$artifacts/dhcp_answer.log" || status=$?
tail -n 25 "$artifacts/dhcp_answer.log"
if ((status != 0)); then
  echo "tests/fuzz: dhcp_answer crashed (exit $status); input in $artifacts/" >&2
fi
exit "$status"
