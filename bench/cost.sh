#!/usr/bin/env bash
# cost.sh [PATH] [REQUESTS] [app file lines...]
#
# CPU and context switches per request, per process, of one capstan serving a
# copy of the bench app (2 workers, access log off), under a fixed number of
# HTTP/1.1 requests from h2load (64 connections). Counts come from
# `perf stat --per-thread` (task-clock, context-switches), so they are a
# whole-process figure, steadier than req/s on a noisy host. Extra arguments
# are added to the app file's [web] table, e.g. to compare settings:
#
#   bench/cost.sh / 40000 "pipeline = 0"
#   bench/cost.sh / 40000 "pipeline = 8"
#   CONNECTIONS=1 bench/cost.sh /page 5000
#   BODY=64Ki bench/cost.sh /echo 20000          # POSTs a 64 KiB body
#
# Prints h2load's summary, then one line per thread: CPU µs and context
# switches per request (of all requests, so a worker's share is its part).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
shared=${SHARED_BENCH:-$root/../shared/bench}
path=${1:-/}
requests=${2:-40000}
shift $(($# < 2 ? $# : 2))
port=${PORT:-9980}
connections=${CONNECTIONS:-64}
post=()

for tool in perf h2load; do
  command -v "$tool" >/dev/null || { echo "cost.sh: needs $tool" >&2; exit 2; }
done
if ss -ltn | grep -q ":$port "; then
  echo "cost.sh: port $port is taken" >&2
  exit 2
fi

(cd "$root" && cargo build --release --quiet)
work=$(mktemp -d /tmp/capstan-cost.XXXXXX)
pid=
cleanup() {
  [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

if [ -n "${BODY:-}" ]; then
  head -c "$(numfmt --from=iec-i "$BODY")" /dev/urandom > "$work/body"
  post=(-d "$work/body")
fi
cp -r "$shared/apps/hello" "$work/app"
chmod -R u+w "$work/app"
{
  printf 'name = "bench"\n\n[web]\nwsgi = "app:app"\nworkers = 2\n'
  for line in "$@"; do printf '%s\n' "$line"; done
  printf '\n[static]\n"/static" = "static"\n\n[http]\naccess_log = false\nhttps_redirect = false\n'
} > "$work/app/capstan.toml"

"$root/target/release/capstan" run "$work/app" --listen "127.0.0.1:$port" >"$work/log" 2>&1 &
pid=$!
for _ in $(seq 1 1800); do
  grep -q ' serving ' "$work/log" && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/log" >&2; exit 1; }
  sleep 0.1
done
url="http://127.0.0.1:$port$path"
h2load --h1 -n 5000 -c "$connections" -t 2 "${post[@]}" "$url" >/dev/null   # warm up

threads=$(pgrep -P "$pid" | tr '\n' ',')
perf stat -e task-clock,context-switches --per-thread -p "$pid,${threads%,}" \
  -o "$work/perf.txt" &
perf=$!
sleep 0.3
h2load --h1 -n "$requests" -c "$connections" -t 2 "${post[@]}" "$url" | grep -E 'finished in|requests:|status codes:'
kill -INT "$perf"
wait "$perf" || true

awk -v n="$requests" '
  / task-clock / { gsub(",", "", $2); cpu[$1] += $2 }
  / context-switches / { gsub(",", "", $2); cs[$1] += $2 }
  END {
    for (t in cpu) if (cpu[t] > 0) {
      printf "%-26s %8.1f us/request %6.2f switches/request\n", t, cpu[t] * 1000 / n, cs[t] / n
      total += cpu[t]; switches += cs[t]
    }
    printf "%-26s %8.1f us/request %6.2f switches/request\n", "all", total * 1000 / n, switches / n
  }' "$work/perf.txt"
