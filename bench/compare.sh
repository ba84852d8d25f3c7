#!/usr/bin/env bash
# compare.sh [bench.sh options]
#
# Runs the shared benchmark (../shared/bench) with capstan as columns beside
# the seed stack (nginx -> gunicorn) and the anchors (gunicorn, granian,
# uWSGI alone), in one interleaved run, on the same app with 2 workers each.
# Each capstan column serves its own copy of the bench app, with its access
# log off like the seed stack's:
#
#   capstan       threads = 1 per worker    http :9080  https/h2 :9443
#   capstan_t32   threads = 32 per worker   http :9180  https/h2 :9543
#
#   bench/compare.sh                                  # full run, about 30 minutes
#   bench/compare.sh --rounds 1 --duration 3          # quick look
#   CAPSTAN_THREADS="1" ANCHORS="" bench/compare.sh --rounds 1 --duration 2 --warmup 0
#
# bench.sh prints the summary and keeps it in ../shared/bench/results/<run>/.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
shared=${SHARED_BENCH:-$root/../shared/bench}
[ -x "$shared/bench.sh" ] || { echo "compare.sh: no benchmark harness at $shared" >&2; exit 2; }
variants=${CAPSTAN_THREADS:-1 32}

(cd "$root" && cargo build --release --quiet)
work=$(mktemp -d /tmp/capstan-bench.XXXXXX)
pids=()
stop() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || true
  done
}
trap stop EXIT

labels=()
offset=0
for threads in $variants; do
  label=capstan
  [ "$threads" = 1 ] || label=capstan_t$threads
  app=$work/$label
  cp -r "$shared/apps/hello" "$app"
  chmod -R u+w "$app"
  cat > "$app/capstan.toml" <<TOML
name = "bench"

[web]
wsgi = "app:app"
workers = 2
threads = $threads

[static]
"/static" = "static"

[http]
access_log = false
https_redirect = false
TOML
  http=$((9080 + offset)) https=$((9443 + offset))
  offset=$((offset + 100))
  log=$work/$label.log
  setsid "$root/target/release/capstan" run "$app" \
    --listen "127.0.0.1:$http" --tls-listen "127.0.0.1:$https" >"$log" 2>&1 &
  pid=$!
  pids+=("$pid")
  for _ in $(seq 1 1800); do
    grep -q ' serving ' "$log" && break
    kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; exit 1; }
    sleep 0.1
  done
  grep -q ' serving ' "$log" || { cat "$log" >&2; echo "compare.sh: $label did not start" >&2; exit 1; }
  labels+=("$label=http://127.0.0.1:$http" --h2 "$label=https://127.0.0.1:$https" --pids "$label=$pid")
done

cd "$shared"
./bench.sh "${labels[@]}" "$@"
