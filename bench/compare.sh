#!/usr/bin/env bash
# compare.sh [bench.sh options]
#
# Runs the shared benchmark (../shared/bench) with capstan as a column beside
# the seed stack (nginx -> gunicorn) and the anchors (gunicorn, granian,
# uWSGI alone), in one interleaved run, on the same app with 2 workers each.
# capstan serves a copy of the bench app on 127.0.0.1:9080 (HTTP) and :9443
# (HTTPS, h2), with its access log off like the seed stack's.
#
#   bench/compare.sh                                  # full run, about 25 minutes
#   bench/compare.sh --rounds 1 --duration 3          # quick look
#   ANCHORS="" bench/compare.sh --rounds 1 --duration 2 --warmup 0
#
# The summary is printed by bench.sh and kept in ../shared/bench/results/<run>/.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
shared=${SHARED_BENCH:-$root/../shared/bench}
[ -x "$shared/bench.sh" ] || { echo "compare.sh: no benchmark harness at $shared" >&2; exit 2; }

(cd "$root" && cargo build --release --quiet)

work=$(mktemp -d /tmp/capstan-bench.XXXXXX)
app=$work/hello
cp -r "$shared/apps/hello" "$app"
chmod -R u+w "$app"
cat > "$app/capstan.toml" <<'TOML'
name = "bench"

[web]
wsgi = "app:app"
workers = 2
threads = ${CAPSTAN_THREADS}

[static]
"/static" = "static"

[http]
access_log = false
https_redirect = false
TOML
sed -i "s/\${CAPSTAN_THREADS}/${CAPSTAN_THREADS:-1}/" "$app/capstan.toml"

log=$work/capstan.log
setsid "$root/target/release/capstan" run "$app" \
  --listen 127.0.0.1:9080 --tls-listen 127.0.0.1:9443 >"$log" 2>&1 &
pid=$!
stop() {
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL -- "-$pid" 2>/dev/null || true
}
trap stop EXIT

for _ in $(seq 1 1800); do
  grep -q ' serving ' "$log" && break
  kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; exit 1; }
  sleep 0.1
done
grep -q ' serving ' "$log" || { cat "$log" >&2; echo "compare.sh: capstan did not start" >&2; exit 1; }

cd "$shared"
./bench.sh capstan=http://127.0.0.1:9080 --h2 capstan=https://127.0.0.1:9443 --pids "capstan=$pid" "$@"
