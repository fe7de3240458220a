#!/usr/bin/env bash
# Request validation benchmark: requests per proxy CPU-second of a POST whose 1 KiB JSON body
# is validated against a model (nested objects, an array of $ref'd items, patterns, bounds),
# against the same POST on the unvalidated route of the same process, rounds interleaved.
# Plain HTTP/1.1; the proxy on core 0, wrk and the upstream on core 1.
#
# Prerequisites (Debian): apt-get install -y wrk openssl curl util-linux
# Usage: benches/proxy/validation.sh [duration_seconds=10] [connections=64] [rounds=3]
# Target: validated ≥ 0.85 × unvalidated requests per proxy CPU-second (DESIGN.md).
set -euo pipefail

DUR=${1:-10}
CONNS=${2:-64}
ROUNDS=${3:-3}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d /tmp/turnpike-validation-bench.XXXXXX)
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
UP=127.0.0.1:18095
PROXY=127.0.0.1:18096

# shellcheck source=benches/proxy/common.sh
. "$ROOT/benches/proxy/common.sh"
pids=()
trap cleanup EXIT

for tool in wrk openssl taskset curl; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install -y wrk openssl curl util-linux)"; exit 1; }
done

BIN=$(bench_binary "$ROOT")
order_post "$WORK" "$BIN"
[ "$(wc -c < "$WORK/body.json")" = 1024 ] || { echo "the body is not 1 KiB"; exit 1; }

taskset -c "$LOAD_CPU" "$BIN" upstream "$UP" & pids+=($!)
BENCH_VALIDATED=1 taskset -c "$PROXY_CPU" "$BIN" turnpike "$PROXY" 127.0.0.1:0 "$UP" "$WORK/cert.pem" "$WORK/key.pem" & pids+=($!)
PROXY_PID=$!
cpu_quota "$PROXY_PID" turnpike
HOST=$("$BIN" host)

post() { curl -s -o /dev/null -w '%{http_code}' -H "Host: $HOST" -H 'Content-Type: application/json' "$@"; }
for i in $(seq 1 100); do
  [ "$(post --data-binary "@$WORK/body.json" "http://$PROXY/prod/v/orders")" = 200 ] && break
  sleep 0.1
done
# The validated route really validates: the same body, broken, is refused.
code=$(post --data-binary '{"id":"UPPER"}' "http://$PROXY/prod/v/orders")
[ "$code" = 400 ] || { echo "the validated route answered $code to an invalid body"; exit 1; }
code=$(post --data-binary "@$WORK/body.json" "http://$PROXY/prod/plain/orders")
[ "$code" = 200 ] || { echo "the plain route answered $code"; exit 1; }

# run NAME URL: prints "NAME requests/s cpu_us_per_request non2xx"
run() { wrk_round "$1" "$PROXY_PID" "$2" -s "$WORK/post.lua" -H "Host: $HOST"; }

results=()
for round in $(seq 1 "$ROUNDS"); do
  echo "round $round of $ROUNDS" >&2
  results+=("$(run unvalidated "http://$PROXY/prod/plain/orders")")
  results+=("$(run validated "http://$PROXY/prod/v/orders")")
done


echo
echo "POST with a 1 KiB JSON body; wrk -t1 -c$CONNS -d${DUR}s; proxy on CPU $PROXY_CPU, wrk + upstream on CPU $LOAD_CPU; median of $ROUNDS rounds"
echo "$(quota_note)"
echo
echo "| target | requests/s | proxy CPU µs / request | requests per proxy CPU-second | non-2xx |"
echo "|---|---:|---:|---:|---:|"
for t in unvalidated validated; do
  cpu=$(median $t 3)
  echo "| $t | $(median $t 2) | $cpu | $(awk -v c="$cpu" 'BEGIN { if (c > 0) printf "%.0f", 1e6 / c; else print "n/a" }') | $(median $t 4) |"
done
echo
echo "validated / unvalidated: $(ratio "$(median unvalidated 3)" "$(median validated 3)") x requests per CPU-second (target ≥ 0.85)"
echo
echo "every round:"
printf '  %s\n' "${results[@]}"
