#!/usr/bin/env bash
# deploys.sh [--deploys N] [--connections C] [--slice SECONDS] [--only seed]
#
# What a deploy costs the people using the site, in one run on this machine:
#
#   seed     the hand-built flow on examples/blog: nginx -> gunicorn (-w 2) and
#            an rq worker under supervisord; a deploy is
#            `git pull; supervisorctl stop all; flask db upgrade;
#             pybabel compile; supervisorctl start all`
#   capstan  `capstan daemon` with examples/blog created as an app; a deploy
#            is `git push` to its repository
#
# Both get N deploys (default 10) of a one-line change while wrk keeps C
# connections (default 8) on GET /, in slices of a few seconds until the last
# deploy is done; every slice's failures are added up: non-2xx/3xx answers and
# socket errors (connect, read, write, timeout). A probe GETs / every 100 ms
# beside the load, so its failures times 0.1 s say how long the site was down
# (wrk's count alone grows with how fast a down site fails). It also prints how long each
# deploy took (capstan: push to live, which includes the health check), the
# first deploy with a cold venv, and the daemon's memory: idle with no app,
# then with 3 apps of 2 workers (its own RSS and PSS, and the whole tree's PSS).
#
# Loopback only; every process started here is stopped by its PID at the end.
# Run as root (it may apt-get install nginx, supervisor, redis-server, wrk).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
shared=${SHARED_BENCH:-$root/../shared/bench}
. "$shared/lib/common.sh"

deploys=10 connections=8 slice=4 only=""
while [ $# -gt 0 ]; do
  case $1 in
    --deploys) deploys=$2; shift 2 ;;
    --connections) connections=$2; shift 2 ;;
    --slice) slice=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    *) die "unknown option $1 (see the header of $0)" ;;
  esac
done

need_base_tools
need_cmd nginx nginx
need_cmd supervisord supervisor
need_cmd redis-server redis-server
need_cmd wrk wrk
need_cmd git git
PYTHON=/usr/bin/python3 ensure_python
[ "$only" = seed ] || (cd "$root" && cargo build --release --quiet)
capstan=$root/target/release/capstan

work=$(mktemp -d /tmp/capstan-deploys.XXXXXX)
chmod 755 "$work"
pids=$work/pids
touch "$pids"
cleanup() {
  stop_pidfile "$pids"
  for app in blog mem1 mem2 mem3; do userdel "capstan-$app" 2>/dev/null || true; done
  rm -rf -- "$work"
}
trap cleanup EXIT
[ -n "${TRACE:-}" ] && set -x

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
export GIT_CONFIG_NOSYSTEM=1 HOME=$work/home GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@example.com \
  GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@example.com
mkdir -p "$HOME"

redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no >"$work/redis.log" 2>&1 &
record_pid "$pids" redis $!
redis_url=redis://127.0.0.1:$redis_port/0

# The app's history: one origin both flows deploy from.
origin=$work/origin
mkdir -p "$origin"
cp -r "$root/examples/blog/." "$origin/"
rm -rf "$origin/.capstan" "$origin"/blog.db "$origin"/stats.txt
find "$origin" -name '*.mo' -delete
sed -i 's|^python = .*||' "$origin/capstan.toml"
printf 'python = "/usr/bin/python3"\n%s\n' "$(cat "$origin/capstan.toml")" > "$origin/capstan.toml"
git -C "$origin" init -q -b main
git -C "$origin" add -A
git -C "$origin" commit -qm "blog"

# change N: the one-line change of deploy N.
change() {
  printf '/* deploy %s */\n' "$1" >> "$origin/app/static/style.css"
  git -C "$origin" commit -qam "deploy $1"
}

# Every load loop ends by this many seconds, whatever happens to the deploys.
max_load=600

# load_until FILE HOST URL: wrk slices against URL until FILE exists; prints
# "requests failed" summed over the slices.
load_until() {
  local done_file=$1 host=$2 url=$3 out requests=0 failed=0 r f
  local deadline=$((SECONDS + max_load))
  while [ ! -e "$done_file" ] && [ -d "$work" ] && [ $SECONDS -lt $deadline ]; do
    out=$(wrk -t1 -c"$connections" -d"${slice}s" --timeout 10s -H "Host: $host" "$url" 2>&1) || true
    r=$(awk '/requests in/ {print $1}' <<<"$out")
    f=$(awk '/Non-2xx/ {n += $NF} /Socket errors/ {gsub(",", ""); n += $4 + $6 + $8 + $10} END {print n + 0}' <<<"$out")
    requests=$((requests + ${r:-0})) failed=$((failed + f))
  done
  echo "$requests $failed"
}

# probe_until FILE HOST URL: one GET every 100 ms until FILE exists; prints
# "probes failed", so failed x 0.1 s is how long the site was down.
probe_until() {
  local done_file=$1 host=$2 url=$3 probes=0 failed=0
  local deadline=$((SECONDS + max_load))
  while [ ! -e "$done_file" ] && [ -d "$work" ] && [ $SECONDS -lt $deadline ]; do
    probes=$((probes + 1))
    curl -sf -o /dev/null --max-time 5 -H "Host: $host" "$url" || failed=$((failed + 1))
    sleep 0.1
  done
  echo "$probes $failed"
}

ms_since() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }

# ------------------------------------------------------------------ seed --
seed=$work/seed
git clone -q "$origin" "$seed/app"
log "seed: venv with gunicorn"
make_venv "$seed/venv" -r "$seed/app/requirements.txt" gunicorn==23.0.0
seed_up=$(free_port) seed_http=$(free_port)
cat > "$seed/supervisord.conf" <<EOF
[unix_http_server]
file=$seed/supervisor.sock
[supervisord]
nodaemon=true
logfile=$seed/supervisord.log
pidfile=$seed/supervisord.pid
[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface
[supervisorctl]
serverurl=unix://$seed/supervisor.sock
[program:web]
command=$seed/venv/bin/gunicorn -w 2 -b 127.0.0.1:$seed_up blog:app
directory=$seed/app
environment=REDIS_URL="$redis_url",PATH="$seed/venv/bin:/usr/bin:/bin"
stopasgroup=true
[program:tasks]
command=$seed/venv/bin/rq worker --url $redis_url blog
directory=$seed/app
environment=PATH="$seed/venv/bin:/usr/bin:/bin"
stopasgroup=true
EOF
cat > "$seed/nginx.conf" <<EOF
worker_processes 1;
pid $seed/nginx.pid;
error_log $seed/nginx-error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $seed/tmp; proxy_temp_path $seed/tmp;
  fastcgi_temp_path $seed/tmp; uwsgi_temp_path $seed/tmp; scgi_temp_path $seed/tmp;
  server {
    listen 127.0.0.1:$seed_http;
    location /static/ { alias $seed/app/app/static/; }
    location / { proxy_pass http://127.0.0.1:$seed_up; proxy_set_header Host \$host; }
  }
}
EOF
mkdir -p "$seed/tmp"
seed_deploy_steps() {
  local ctl=(supervisorctl -c "$seed/supervisord.conf")
  (cd "$seed/app" \
    && git pull -q \
    && { "${ctl[@]}" stop all >"$work/ctl.log" 2>&1 || { cat "$work/ctl.log" >&2; false; }; } \
    && REDIS_URL=$redis_url FLASK_APP=blog.py "$seed/venv/bin/flask" db upgrade >/dev/null 2>&1 \
    && "$seed/venv/bin/pybabel" compile -d app/translations >/dev/null 2>&1 \
    && { "${ctl[@]}" start all >"$work/ctl.log" 2>&1 || { cat "$work/ctl.log" >&2; false; }; })
}
(cd "$seed/app" && FLASK_APP=blog.py "$seed/venv/bin/flask" db upgrade >/dev/null 2>&1 \
  && "$seed/venv/bin/pybabel" compile -d app/translations >/dev/null 2>&1)
supervisord -c "$seed/supervisord.conf" >/dev/null 2>&1 &
record_pid "$pids" supervisord $!
nginx -p "$seed" -c "$seed/nginx.conf" -g 'daemon off;' &
record_pid "$pids" nginx $!
wait_http "http://127.0.0.1:$seed_http/health" 60 -f || die "the seed stack did not come up"

log "seed: $deploys deploys under load"
rm -f "$work/seed-done"
load_until "$work/seed-done" blog.test "http://127.0.0.1:$seed_http/" > "$work/seed-load" &
seed_load=$!
record_pid "$pids" loader "$seed_load"
probe_until "$work/seed-done" blog.test "http://127.0.0.1:$seed_http/" > "$work/seed-probe" &
seed_probe=$!
record_pid "$pids" probe "$seed_probe"
seed_times=()
for n in $(seq 1 "$deploys"); do
  change "seed $n"
  t=$(date +%s%N)
  seed_deploy_steps
  seed_times+=("$(ms_since "$t")")
  sleep 1
done
touch "$work/seed-done"
wait "$seed_load" "$seed_probe"
read -r seed_requests seed_failed < "$work/seed-load"
read -r seed_probes seed_down < "$work/seed-probe"
grep -E '^(nginx|supervisord|loader|probe) ' "$pids" > "$pids.seed" || true
stop_pidfile "$pids.seed"
grep -vE '^(nginx|supervisord|loader|probe) ' "$pids" > "$pids.rest" || true
mv "$pids.rest" "$pids"
if [ "$only" = seed ]; then
  echo "seed: $seed_requests requests, $seed_failed failed; probes $seed_probes, $seed_down failed; deploys (ms): ${seed_times[*]}"
  exit 0
fi

# --------------------------------------------------------------- capstan --
state=$work/capstan
http=$(free_port)
"$capstan" daemon --root "$state" --listen "127.0.0.1:$http" >"$work/daemon.log" 2>&1 &
daemon=$!
record_pid "$pids" capstan-daemon "$daemon"
for _ in $(seq 1 100); do grep -q "serving every app" "$work/daemon.log" && break; sleep 0.1; done
export CAPSTAN_ROOT=$state
idle_rss=$(awk '/^VmRSS/ {print $2}' "/proc/$daemon/status")
idle_pss=$(awk '/^Pss:/ {print $2}' "/proc/$daemon/smaps_rollup")

"$capstan" apps create blog --domain blog.test >/dev/null
"$capstan" env blog set "REDIS_URL=$redis_url" >/dev/null
t=$(date +%s%N)
git -C "$origin" push -q "$state/apps/blog/repo.git" main 2>"$work/first-push.log" \
  || { cat "$work/first-push.log"; die "the first push failed"; }
first_ms=$(ms_since "$t")

log "capstan: $deploys deploys under load"
rm -f "$work/capstan-done"
load_until "$work/capstan-done" blog.test "http://127.0.0.1:$http/" > "$work/capstan-load" &
capstan_load=$!
record_pid "$pids" loader "$capstan_load"
probe_until "$work/capstan-done" blog.test "http://127.0.0.1:$http/" > "$work/capstan-probe" &
capstan_probe=$!
record_pid "$pids" probe "$capstan_probe"
capstan_times=()
for n in $(seq 1 "$deploys"); do
  change "capstan $n"
  t=$(date +%s%N)
  git -C "$origin" push -q "$state/apps/blog/repo.git" main 2>>"$work/pushes.log" \
    || { tail -20 "$work/pushes.log"; die "push $n failed"; }
  capstan_times+=("$(ms_since "$t")")
  sleep 1
done
touch "$work/capstan-done"
wait "$capstan_load" "$capstan_probe"
read -r capstan_requests capstan_failed < "$work/capstan-load"
read -r capstan_probes capstan_down < "$work/capstan-probe"

# Memory with 3 apps of 2 workers (examples/hello) beside nothing else.
"$capstan" apps destroy blog --yes >/dev/null 2>&1 || true
hello=$work/hello
mkdir -p "$hello"
cp -r "$root/examples/hello/." "$hello/"
rm -rf "$hello/.capstan"
printf 'python = "/usr/bin/python3"\n%s\n' \
  "$(grep -v '^name' "$hello/capstan.toml" | sed 's/^\[web\]$/[web]\nworkers = 2/')" > "$hello/capstan.toml"
git -C "$hello" init -q -b main && git -C "$hello" add -A && git -C "$hello" commit -qm hello
for app in mem1 mem2 mem3; do
  "$capstan" apps create "$app" --domain "$app.test" >/dev/null
  git -C "$hello" push -q "$state/apps/$app/repo.git" main 2>>"$work/pushes.log" \
    || { tail -20 "$work/pushes.log"; die "the push of $app failed"; }
done
sleep 2
apps_rss=$(awk '/^VmRSS/ {print $2}' "/proc/$daemon/status")
apps_pss=$(awk '/^Pss:/ {print $2}' "/proc/$daemon/smaps_rollup")
tree_pss=$apps_pss
for pid in $(descendants_of "$daemon"); do
  p=$(awk '/^Pss:/ {print $2}' "/proc/$pid/smaps_rollup" 2>/dev/null || echo 0)
  tree_pss=$((tree_pss + p))
done

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : int((a[NR / 2] + a[NR / 2 + 1]) / 2)}'; }
cat <<EOF

## Deploys under load ($(date -u +%Y-%m-%d), $deploys deploys, wrk -c$connections on GET /)

| flow | requests | failed | probes failed (x 0.1 s down) | deploy time, median (min-max) |
|---|---:|---:|---:|---|
| seed (git pull; stop; flask db upgrade; pybabel compile; start) | $seed_requests | $seed_failed | $seed_down of $seed_probes | $(median "${seed_times[@]}") ms ($(printf '%s\n' "${seed_times[@]}" | sort -n | head -1)-$(printf '%s\n' "${seed_times[@]}" | sort -n | tail -1)) |
| capstan (git push, to live) | $capstan_requests | $capstan_failed | $capstan_down of $capstan_probes | $(median "${capstan_times[@]}") ms ($(printf '%s\n' "${capstan_times[@]}" | sort -n | head -1)-$(printf '%s\n' "${capstan_times[@]}" | sort -n | tail -1)) |

- first capstan deploy of examples/blog, cold venv: $first_ms ms
- daemon idle, no app: RSS $((idle_rss / 1024)).$(( (idle_rss % 1024) * 10 / 1024 )) MiB, PSS $((idle_pss / 1024)).$(( (idle_pss % 1024) * 10 / 1024 )) MiB
- daemon with 3 apps x 2 workers: its own RSS $((apps_rss / 1024)).$(( (apps_rss % 1024) * 10 / 1024 )) MiB, PSS $((apps_pss / 1024)).$(( (apps_pss % 1024) * 10 / 1024 )) MiB; whole tree PSS $((tree_pss / 1024)) MiB
EOF
