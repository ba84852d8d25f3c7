#!/usr/bin/env bash
# Scans a default capstan's HTTPS with testssl.sh (Debian's `testssl.sh`):
# capstan serves examples/hello with a certificate from Pebble (Let's
# Encrypt's test ACME server, Debian's `pebble`) on loopback, and testssl.sh
# checks protocols, ciphers, vulnerabilities and headers against it.
#
#   scripts/tls-scan.sh [OUT_DIR]      (needs: pebble, testssl.sh, openssl)
#
# CAPSTAN=path/to/capstan uses that binary instead of building a release one.
#
# Prints testssl's findings of severity MEDIUM and above and exits 1 if any
# is HIGH or CRITICAL. OUT_DIR (default: a temp dir) keeps the full log/JSON.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-$(mktemp -d)}
mkdir -p "$out"
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# Certificates shaped like Let's Encrypt's: 90 days, with a revocation URL
# (nothing answers it; testssl only checks that the certificate names one).
ocsp=$(port)
http=$(port); https=$(port); acme=$(port); acme_mgmt=$(port); dns=$(port); dns_mgmt=$(port)
domain=scan.capstan.test

# Pebble's own HTTPS identity: a CA and a loopback certificate.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj "/CN=capstan scan CA" -keyout "$work/ca.key" -out "$work/ca.crt" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
  -keyout "$work/pebble.key" -out "$work/pebble.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$work/san.ext"
openssl x509 -req -in "$work/pebble.csr" -CA "$work/ca.crt" -CAkey "$work/ca.key" \
  -CAcreateserial -days 2 -extfile "$work/san.ext" -out "$work/pebble.crt" 2>/dev/null
cat >"$work/pebble.json" <<JSON
{"pebble": {"listenAddress": "127.0.0.1:$acme", "managementListenAddress": "127.0.0.1:$acme_mgmt",
 "certificate": "$work/pebble.crt", "privateKey": "$work/pebble.key",
 "httpPort": $http, "tlsPort": $https, "externalAccountBindingRequired": false,
 "ocspResponderURL": "http://127.0.0.1:$ocsp", "certificateValidityPeriod": 7776000}}
JSON
pebble-challtestsrv -dns01 "127.0.0.1:$dns" -http01 "" -https01 "" -tlsalpn01 "" \
  -management "127.0.0.1:$dns_mgmt" -defaultIPv4 127.0.0.1 -defaultIPv6 "" >/dev/null 2>&1 &
pids+=($!)
PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=0 pebble -config "$work/pebble.json" \
  -dnsserver "127.0.0.1:$dns" >"$work/pebble.log" 2>&1 &
pids+=($!)

capstan=${CAPSTAN:-}
if [[ -z $capstan ]]; then
  cargo build --release -q
  capstan=./target/release/capstan
fi
cp -r examples/hello "$work/app"
rm -rf "$work/app/.capstan"
venv=()
# The tests' Flask venv, when there is one, saves a pip install.
[[ -x target/test-venv/bin/python ]] && venv=(--venv target/test-venv)
"$capstan" run "$work/app" "${venv[@]}" --listen "127.0.0.1:$http" --tls-listen "127.0.0.1:$https" \
  --domain "$domain" --acme-directory "https://127.0.0.1:$acme/dir" --acme-ca-root "$work/ca.crt" \
  --no-access-log >"$work/capstan.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 600); do
  grep -q "certificate issued" "$work/capstan.log" && break
  sleep 0.2
done
grep "certificate issued" "$work/capstan.log" || { cat "$work/capstan.log"; exit 1; }
started=$(date +%s)
python3 - "$work/ca.crt" "https://127.0.0.1:$acme_mgmt/roots/0" >"$work/issuing-root.pem" <<'PY'
import ssl, sys, urllib.request
context = ssl.create_default_context(cafile=sys.argv[1])
sys.stdout.write(urllib.request.urlopen(sys.argv[2], context=context).read().decode())
PY

testssl --quiet --warnings off --color 0 --add-ca "$work/issuing-root.pem" \
  --ip 127.0.0.1 --jsonfile "$out/testssl.json" --logfile "$out/testssl.log" \
  "https://$domain:$https" >/dev/null || true
echo "testssl.sh took $(($(date +%s) - started)) s"
python3 - "$out/testssl.json" <<'PY'
import json, sys
findings = json.load(open(sys.argv[1]))
order = ["OK", "INFO", "LOW", "MEDIUM", "HIGH", "CRITICAL"]
counts = {s: 0 for s in order}
for f in findings:
    counts[f.get("severity", "INFO")] = counts.get(f.get("severity", "INFO"), 0) + 1
for f in findings:
    if f.get("severity") in ("MEDIUM", "HIGH", "CRITICAL", "WARN"):
        print(f'{f["severity"]:8} {f["id"]}: {f["finding"]}')
print("summary: " + ", ".join(f"{s} {counts.get(s, 0)}" for s in order + ["WARN"]))
sys.exit(1 if counts["HIGH"] or counts["CRITICAL"] else 0)
PY
