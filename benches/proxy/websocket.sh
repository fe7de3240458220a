#!/usr/bin/env bash
# WebSocket benchmark: (a) memory held per idle connection: the proxy's RSS before and after
# opening N idle connections (KiB per connection; target ≤ 16 KiB); (b) messages per proxy
# CPU-second echoed through an HTTP integration (`{"action":"echo"}` on a two-way route whose
# HTTP_PROXY backend answers), CONNS connections each sending one message and waiting for its
# answer, rounds repeated. Plain WebSocket (ws://) on the proxy's plain listener; the proxy on
# core 0, the Python client (benches/proxy/ws_load.py, `websockets`) and the upstream on core 1.
#
# Prerequisites: pip install websockets (tests/python/requirements.txt); taskset (util-linux).
# Usage: benches/proxy/websocket.sh [idle_connections=10000] [duration_seconds=10]
#        [connections=64] [rounds=3]
# Set PYTHON to a Python with `websockets` (default: .venv/bin/python, else python3).
set -euo pipefail

IDLE=${1:-10000}
DUR=${2:-10}
CONNS=${3:-64}
ROUNDS=${4:-3}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d /tmp/turnpike-websocket-bench.XXXXXX)
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
UP=127.0.0.1:18099
PROXY=127.0.0.1:18100
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
[ -x "$PYTHON" ] || PYTHON=python3

# shellcheck source=benches/proxy/common.sh
. "$ROOT/benches/proxy/common.sh"
pids=()
trap cleanup EXIT

command -v taskset >/dev/null || { echo "missing taskset (apt-get install -y util-linux)"; exit 1; }
"$PYTHON" -c 'import websockets' 2>/dev/null || { echo "$PYTHON lacks websockets (pip install websockets)"; exit 1; }
# Every idle connection is a socket on each side.
ulimit -n $(( IDLE * 2 + 1024 )) 2>/dev/null || ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" -gt "$IDLE" ] || { echo "ulimit -n $(ulimit -n) is below $IDLE connections"; exit 1; }

BIN=$(bench_binary "$ROOT")
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -keyout "$WORK/key.pem" -out "$WORK/cert.pem" -subj /CN=localhost >/dev/null 2>&1

taskset -c "$LOAD_CPU" "$BIN" upstream "$UP" & pids+=($!)
BENCH_WEBSOCKET=1 taskset -c "$PROXY_CPU" "$BIN" turnpike "$PROXY" 127.0.0.1:0 "$UP" "$WORK/cert.pem" "$WORK/key.pem" & pids+=($!)
PROXY_PID=$!
cpu_quota "$PROXY_PID" turnpike
API=$("$BIN" host | cut -d. -f1)
URL="ws://$PROXY/restapis/$API/prod/_user_request_"
load() { taskset -c "$LOAD_CPU" "$PYTHON" "$ROOT/benches/proxy/ws_load.py" "$@"; }

# Ready, and warm: one echo round trip (the upstream connection pool, the allocator).
for i in $(seq 1 100); do
  load echo "$URL" 1 0.2 >/dev/null 2>&1 && break
  sleep 0.1
done
load echo "$URL" 4 1 | grep -q '^echoed [1-9]' || { echo "the echo route does not answer"; exit 1; }

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$PROXY_PID/status"; }

# (a) idle connections.
before=$(rss_kib)
mkfifo "$WORK/hold"
load idle "$URL" "$IDLE" < "$WORK/hold" > "$WORK/idle.out" &
IDLE_PID=$!
exec 3> "$WORK/hold"
for i in $(seq 1 1200); do
  grep -q '^open' "$WORK/idle.out" 2>/dev/null && break
  kill -0 "$IDLE_PID" 2>/dev/null || { echo "the idle client failed"; exit 1; }
  sleep 0.1
done
grep -q '^open' "$WORK/idle.out" || { echo "the idle connections did not all open"; exit 1; }
sleep 1
after=$(rss_kib)
exec 3>&-
wait "$IDLE_PID" || true

# (b) echoed messages per proxy CPU-second.
results=()
for round in $(seq 1 "$ROUNDS"); do
  echo "round $round of $ROUNDS" >&2
  t0=$(cpu_ticks "$PROXY_PID")
  out=$(load echo "$URL" "$CONNS" "$DUR")
  t1=$(cpu_ticks "$PROXY_PID")
  n=$(echo "$out" | awk '/^echoed/ {print $2}')
  results+=("echo $(awk -v n="$n" -v d="$DUR" 'BEGIN { printf "%.0f", n / d }') $(awk -v t=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" -v n="$n" \
    'BEGIN { if (n > 0) printf "%.2f", t / hz * 1e6 / n; else print "n/a" }')")
done

echo
echo "(a) $IDLE idle WebSocket connections: proxy RSS $before KiB before, $after KiB after:" \
  "$(awk -v a="$after" -v b="$before" -v n="$IDLE" 'BEGIN { printf "%.1f", (a - b) / n }') KiB per connection (target ≤ 16)"
echo
echo "(b) {\"action\":\"echo\"} through a two-way HTTP_PROXY route; $CONNS connections for ${DUR}s; proxy on CPU $PROXY_CPU, client + upstream on CPU $LOAD_CPU; median of $ROUNDS rounds"
echo "$(quota_note)"
echo
echo "| messages/s | proxy CPU µs / message | messages per proxy CPU-second |"
echo "|---:|---:|---:|"
cpu=$(median echo 3)
echo "| $(median echo 2) | $cpu | $(awk -v c="$cpu" 'BEGIN { if (c > 0) printf "%.0f", 1e6 / c; else print "n/a" }') |"
echo
echo "every round:"
printf '  %s\n' "${results[@]}"
