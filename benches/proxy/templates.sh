#!/usr/bin/env bash
# Mapping template benchmark: requests per proxy CPU-second of a POST of a 1 KiB JSON order to
# an HTTP integration whose request template reshapes the order and whose response template
# reshapes the backend's JSON answer (about twenty lines in all), against the same POST on the
# same HTTP integration without templates, in the same process, rounds interleaved. A third
# route runs templates that copy the payload (`$input.body` both ways): how much of the
# templated route's cost is running a template at all (the payloads read whole, the scope, the
# answer rebuilt) rather than the template engine's work.
# Plain HTTP/1.1; the proxy on core 0, wrk and the upstream on core 1.
#
# Prerequisites (Debian): apt-get install -y wrk openssl curl util-linux
# Usage: benches/proxy/templates.sh [duration_seconds=10] [connections=64] [rounds=3]
# Target: templated ≥ 0.8 × untemplated requests per proxy CPU-second (DESIGN.md).
set -euo pipefail

DUR=${1:-10}
CONNS=${2:-64}
ROUNDS=${3:-3}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d /tmp/turnpike-templates-bench.XXXXXX)
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
UP=127.0.0.1:18097
PROXY=127.0.0.1:18098

# shellcheck source=benches/proxy/common.sh
. "$ROOT/benches/proxy/common.sh"
pids=()
trap cleanup EXIT

for tool in wrk openssl taskset curl; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install -y wrk openssl curl util-linux)"; exit 1; }
done

BIN=$(bench_binary "$ROOT")
order_post "$WORK" "$BIN"

taskset -c "$LOAD_CPU" "$BIN" upstream "$UP" & pids+=($!)
BENCH_TEMPLATED=1 taskset -c "$PROXY_CPU" "$BIN" turnpike "$PROXY" 127.0.0.1:0 "$UP" "$WORK/cert.pem" "$WORK/key.pem" & pids+=($!)
PROXY_PID=$!
cpu_quota "$PROXY_PID" turnpike
HOST=$("$BIN" host)

post() { curl -s -H "Host: $HOST" -H 'Content-Type: application/json' --data-binary "@$WORK/body.json" "$@"; }
for i in $(seq 1 100); do
  [ "$(post -o /dev/null -w '%{http_code}' "http://$PROXY/prod/t/orders?source=bench")" = 200 ] && break
  sleep 0.1
done
# The templated route really runs its templates; the plain one passes the answer through.
out=$(post "http://$PROXY/prod/t/orders?source=bench")
echo "$out" | grep -q '"state": "ACCEPTED"' || { echo "the templated route answered: $out"; exit 1; }
out=$(post "http://$PROXY/prod/plain/orders")
echo "$out" | grep -q '"status":"accepted"' || { echo "the plain route answered: $out"; exit 1; }
out=$(post "http://$PROXY/prod/id/orders")
echo "$out" | grep -q '"status":"accepted"' || { echo "the identity route answered: $out"; exit 1; }

# run NAME URL: prints "NAME requests/s cpu_us_per_request non2xx"
run() { wrk_round "$1" "$PROXY_PID" "$2" -s "$WORK/post.lua" -H "Host: $HOST"; }

results=()
for round in $(seq 1 "$ROUNDS"); do
  echo "round $round of $ROUNDS" >&2
  results+=("$(run untemplated "http://$PROXY/prod/plain/orders")")
  results+=("$(run identity "http://$PROXY/prod/id/orders")")
  results+=("$(run templated "http://$PROXY/prod/t/orders?source=bench")")
done

echo
echo "POST of a 1 KiB JSON order to an HTTP integration; wrk -t1 -c$CONNS -d${DUR}s; proxy on CPU $PROXY_CPU, wrk + upstream on CPU $LOAD_CPU; median of $ROUNDS rounds"
echo "$(quota_note)"
echo
echo "| target | requests/s | proxy CPU µs / request | requests per proxy CPU-second | non-2xx |"
echo "|---|---:|---:|---:|---:|"
for t in untemplated identity templated; do
  cpu=$(median $t 3)
  echo "| $t | $(median $t 2) | $cpu | $(awk -v c="$cpu" 'BEGIN { if (c > 0) printf "%.0f", 1e6 / c; else print "n/a" }') | $(median $t 4) |"
done
echo
echo "templated / untemplated: $(ratio "$(median untemplated 3)" "$(median templated 3)") x requests per CPU-second (target ≥ 0.8)"
echo "identity / untemplated: $(ratio "$(median untemplated 3)" "$(median identity 3)") x (what any template costs beyond the engine)"
echo
echo "every round:"
printf '  %s\n' "${results[@]}"
