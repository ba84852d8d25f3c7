#!/usr/bin/env bash
# Runs every fuzz target for SECONDS seconds each (default 60), one after the
# other, on the stable toolchain (RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass the
# sanitizer flags). Stops at the first failure; the input that caused it is in
# fuzz/artifacts/TARGET/ and the whole output in fuzz/logs/TARGET.log.
#
#   fuzz/run.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-60}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
cargo fuzz build
mkdir -p logs
for target in $(cargo fuzz list); do
  mkdir -p "corpus/$target"
  echo "== $target, ${seconds}s"
  if ! cargo fuzz run "$target" "corpus/$target" -- \
      -max_total_time="$seconds" -max_len=4096 -print_final_stats=1 >"logs/$target.log" 2>&1; then
    tail -40 "logs/$target.log" >&2
    echo "== $target failed: see fuzz/artifacts/$target/ and fuzz/logs/$target.log" >&2
    exit 1
  fi
  grep -E '^Done [0-9]+ runs|^stat::number_of_executed_units|^stat::peak_rss_mb' "logs/$target.log" || tail -3 "logs/$target.log"
done
