#!/usr/bin/env bash
# Usage plan benchmark: requests per proxy CPU-second of a route with API key + usage plan
# (throttle and quota) against the plain route of the same process, with local limits and
# with limits shared through Redis, in the same run. Plain HTTP/1.1; the proxy on core 0, wrk
# and the upstream (and Redis) on core 1.
#
# Prerequisites (Debian): apt-get install -y wrk redis-server curl util-linux
# Usage: benches/proxy/usage.sh [duration_seconds=10] [connections=64] [rounds=3]
# Targets: metered local ≥ 0.9 × plain; metered with Redis ≥ 0.8 × plain (DESIGN.md).
set -euo pipefail

DUR=${1:-10}
CONNS=${2:-64}
ROUNDS=${3:-3}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d /tmp/turnpike-usage-bench.XXXXXX)
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
UP=127.0.0.1:18090
LOCAL=127.0.0.1:18091
SHARED=127.0.0.1:18092
REDIS_PORT=18093
KEY=BenchKey0123456789abcdefXYZ

# shellcheck source=benches/proxy/common.sh
. "$ROOT/benches/proxy/common.sh"
pids=()
trap cleanup EXIT

for tool in wrk redis-server openssl taskset curl; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install -y wrk redis-server openssl curl util-linux)"; exit 1; }
done

BIN=$(bench_binary "$ROOT")
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -keyout "$WORK/key.pem" -out "$WORK/cert.pem" -subj /CN=localhost >/dev/null 2>&1

taskset -c "$LOAD_CPU" "$BIN" upstream "$UP" & pids+=($!)
taskset -c "$LOAD_CPU" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
  >/dev/null & pids+=($!)
BENCH_METERED=1 taskset -c "$PROXY_CPU" "$BIN" turnpike "$LOCAL" 127.0.0.1:0 "$UP" "$WORK/cert.pem" "$WORK/key.pem" & pids+=($!)
LOCAL_PID=$!
cpu_quota "$LOCAL_PID" local
BENCH_METERED=1 BENCH_REDIS_URL="redis://127.0.0.1:$REDIS_PORT" taskset -c "$PROXY_CPU" \
  "$BIN" turnpike "$SHARED" 127.0.0.1:0 "$UP" "$WORK/cert.pem" "$WORK/key.pem" & pids+=($!)
SHARED_PID=$!
cpu_quota "$SHARED_PID" shared
HOST=$("$BIN" host)

for i in $(seq 1 100); do
  if curl -sf -o /dev/null -H "Host: $HOST" -H "x-api-key: $KEY" "http://$LOCAL/prod/k/x" \
     && curl -sf -o /dev/null -H "Host: $HOST" -H "x-api-key: $KEY" "http://$SHARED/prod/k/x"; then break; fi
  sleep 0.1
done
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Host: $HOST" "http://$LOCAL/prod/k/x")
[ "$code" = 403 ] || { echo "the metered route answered $code without a key"; exit 1; }
for target in "$LOCAL" "$SHARED"; do
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "Host: $HOST" -H "x-api-key: $KEY" "http://$target/prod/k/x")
  [ "$code" = 200 ] || { echo "the metered route on $target answered $code with the key"; exit 1; }
done

# run NAME URL PID [KEY]: prints "NAME requests/s cpu_us_per_request non2xx"
run() {
  local hdr=(-H "Host: $HOST")
  [ -n "${4:-}" ] && hdr+=(-H "x-api-key: $4")
  wrk_round "$1" "$3" "$2" "${hdr[@]}"
}

results=()
for round in $(seq 1 "$ROUNDS"); do
  echo "round $round of $ROUNDS" >&2
  results+=("$(run local-plain "http://$LOCAL/prod/hello" "$LOCAL_PID")")
  results+=("$(run local-metered "http://$LOCAL/prod/k/hello" "$LOCAL_PID" "$KEY")")
  results+=("$(run redis-plain "http://$SHARED/prod/hello" "$SHARED_PID")")
  results+=("$(run redis-metered "http://$SHARED/prod/k/hello" "$SHARED_PID" "$KEY")")
done


echo
echo "wrk -t1 -c$CONNS -d${DUR}s; proxy on CPU $PROXY_CPU, wrk + upstream + Redis on CPU $LOAD_CPU; median of $ROUNDS rounds"
echo "$(quota_note)"
echo
echo "| target | requests/s | proxy CPU µs / request | requests per proxy CPU-second | non-2xx |"
echo "|---|---:|---:|---:|---:|"
for t in local-plain local-metered redis-plain redis-metered; do
  cpu=$(median $t 3)
  echo "| $t | $(median $t 2) | $cpu | $(awk -v c="$cpu" 'BEGIN { if (c > 0) printf "%.0f", 1e6 / c; else print "n/a" }') | $(median $t 4) |"
done
echo
# Both against the plain route of the process without Redis: what keys and limits cost.
echo "metered local / plain: $(ratio "$(median local-plain 3)" "$(median local-metered 3)") x requests per CPU-second (target ≥ 0.9)"
echo "metered with Redis / plain: $(ratio "$(median local-plain 3)" "$(median redis-metered 3)") x requests per CPU-second (target ≥ 0.8)"
echo
echo "every round:"
printf '  %s\n' "${results[@]}"
