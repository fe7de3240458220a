#!/usr/bin/env bash
# Stage cache benchmark: cached GET hits, Turnpike's stage cache against nginx's proxy_cache
# on the same route (nginx's cache in a tmpfs directory, its keys in shared memory), and the
# miss paths: a cached method whose every request is a new key (a miss and a store each),
# caching off (TTL 0) on a caching stage, and the plain proxy (a stage without cache; nginx
# without proxy_cache). Same run and pinning as benches/proxy/run.sh: the proxy under test on
# core 0, wrk and the upstream on core 1; plain HTTP/1.1; targets interleaved in each round.
#
# Prerequisites (Debian): apt-get install -y wrk nginx-light openssl curl util-linux
# Usage: benches/proxy/cache.sh [duration_seconds=10] [connections=64] [rounds=3]
# Builds benches/proxy/server.rs with `--profile bench` (thin LTO) unless BENCH_BIN is set.
# Target: Turnpike hits ≥ 1.2 × nginx proxy_cache hits, in requests per proxy CPU-second.
set -euo pipefail

DUR=${1:-10}
CONNS=${2:-64}
ROUNDS=${3:-3}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d /tmp/turnpike-cache-bench.XXXXXX)
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
UP=127.0.0.1:18180
NGX=127.0.0.1:18181
NGX_TLS=127.0.0.1:18543
TP=127.0.0.1:18182
# nginx's cache files on tmpfs (as a memory cache): /dev/shm when it is there.
SHM=${CACHE_DIR:-/dev/shm}

# shellcheck source=benches/proxy/common.sh
. "$ROOT/benches/proxy/common.sh"
pids=()
CACHE=$(mktemp -d "$SHM/turnpike-nginx-cache.XXXXXX")
trap 'cleanup; rm -rf "$CACHE"' EXIT

for tool in wrk nginx openssl taskset curl; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install -y wrk nginx-light openssl curl util-linux)"; exit 1; }
done

BIN=$(bench_binary "$ROOT" bench)
write_nginx_conf "$WORK" "$UP" "$NGX" "$NGX_TLS"
# proxy_cache on /c/ (an hour, keyed by the URI as Turnpike keys by the path parameter);
# the plain proxy stays on /.
awk -v cache="$CACHE" '
  /^  server \{/ {
    print "  proxy_cache_path " cache " levels=1:2 keys_zone=api:64m max_size=512m inactive=60m use_temp_path=off;"
  }
  /^    location \/ \{/ {
    print "    location /c/ {"
    print "      proxy_pass http://backend;"
    print "      proxy_http_version 1.1;"
    print "      proxy_set_header Connection \"\";"
    print "      proxy_cache api;"
    print "      proxy_cache_key $uri;"
    print "      proxy_cache_valid 200 1h;"
    print "      proxy_cache_lock on;"
    print "      add_header X-Cache $upstream_cache_status;"
    print "    }"
  }
  { print }' "$WORK/nginx.conf" > "$WORK/nginx-cache.conf"

taskset -c "$LOAD_CPU" "$BIN" upstream "$UP" & pids+=($!)
UP_PID=$!
taskset -c "$PROXY_CPU" nginx -c "$WORK/nginx-cache.conf" -g 'daemon off;' & pids+=($!)
NGX_PID=$!
BENCH_CACHED=1 taskset -c "$PROXY_CPU" "$BIN" turnpike "$TP" 127.0.0.1:0 "$UP" "$WORK/cert.pem" "$WORK/key.pem" & pids+=($!)
TP_PID=$!
HOST=$("$BIN" host)

for i in $(seq 1 100); do
  if curl -sf -o /dev/null "http://$NGX/c/hello" \
     && curl -sf -o /dev/null -H "Host: $HOST" "http://$TP/prod/c/hello"; then break; fi
  sleep 0.1
done
# Both really cache the hit route, and neither the others.
hdr() { curl -s -o /dev/null -D - "$@" | tr -d '\r' | awk -F': ' 'tolower($1) == "x-cache" { print $2 }'; }
cpu_quota "$NGX_PID" nginx
cpu_quota "$TP_PID" turnpike
[ "$(hdr "http://$NGX/c/hello")" = HIT ] || { echo "nginx does not cache /c/"; exit 1; }
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Host: $HOST" "http://$TP/prod/c/hello")
[ "$code" = 200 ] || { echo "turnpike answered $code"; exit 1; }

HZ=$(getconf CLK_TCK)
cat > "$WORK/miss.lua" <<'LUA'
-- Every request a new path: a new cache key (a miss, then a store).
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", PREFIX .. n)
end
LUA

# run NAME URL PID [LUA_PREFIX]: prints "NAME rps p99_us cpu_us_per_request non2xx"
run() {
  local name=$1 url=$2 pid=$3 prefix=${4:-}
  local args=(-t1 -c"$CONNS" -H "Host: $HOST")
  if [ -n "$prefix" ]; then
    sed "s|PREFIX|\"$prefix\"|" "$WORK/miss.lua" > "$WORK/$name.lua"
    args+=(-s "$WORK/$name.lua")
  fi
  taskset -c "$LOAD_CPU" wrk "${args[@]}" -d2s "$url" >/dev/null 2>&1 # warm-up
  local before after out
  before=$(cpu_ticks "$pid")
  out=$(taskset -c "$LOAD_CPU" wrk "${args[@]}" -d"${DUR}s" --latency "$url" 2>&1)
  after=$(cpu_ticks "$pid")
  local rps p99 total non2xx
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  us() { awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) print n; else if (v ~ /ms$/) print n * 1000; else if (v ~ /s$/) print n * 1e6; else print n }'; }
  p99=$(us "$(echo "$out" | awk '$1=="99%" {print $2}')")
  total=$(echo "$out" | awk '/requests in/ {print $1}')
  non2xx=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
  echo "$name $rps $p99 $(awk -v t=$((after - before)) -v hz="$HZ" -v n="$total" \
    'BEGIN { if (n > 0) printf "%.2f", t / hz * 1e6 / n; else print "n/a" }') ${non2xx:-0}"
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
results=()
for round in $(seq 1 "$ROUNDS"); do
  echo "round $round of $ROUNDS" >&2
  results+=("$(run nginx-hit "http://$NGX/c/hello" "$NGX_PID")")
  results+=("$(run turnpike-hit "http://$TP/prod/c/hello" "$TP_PID")")
  results+=("$(run nginx-miss "http://$NGX/c/m" "$NGX_PID" "/c/r$round-m")")
  results+=("$(run turnpike-miss "http://$TP/prod/c/m" "$TP_PID" "/prod/c/r$round-m")")
  results+=("$(run turnpike-ttl0 "http://$TP/prod/nc/hello" "$TP_PID")")
  results+=("$(run nginx-plain "http://$NGX/hello" "$NGX_PID")")
  results+=("$(run turnpike-plain "http://$TP/direct/hello" "$TP_PID")")
done

cps() { awk -v c="$1" 'BEGIN { if (c > 0) printf "%.0f", 1e6 / c; else print "n/a" }'; }
echo
echo "GET, 24-byte answers; wrk -t1 -c$CONNS -d${DUR}s --latency; proxy on CPU $PROXY_CPU, wrk + upstream on CPU $LOAD_CPU;" \
  "$(nproc) CPUs; median of $ROUNDS rounds; load average before: $LOAD_BEFORE"
echo "$(quota_note)"
echo
echo "| target | requests/s | p99 (µs) | proxy CPU µs / request | requests per proxy CPU-second | non-2xx |"
echo "|---|---:|---:|---:|---:|---:|"
for t in nginx-hit turnpike-hit nginx-miss turnpike-miss turnpike-ttl0 nginx-plain turnpike-plain; do
  echo "| $t | $(median $t 2) | $(median $t 3) | $(median $t 4) | $(cps "$(median $t 4)") | $(median $t 5) |"
done
echo
echo "hits, turnpike / nginx proxy_cache: $(ratio "$(median nginx-hit 4)" "$(median turnpike-hit 4)") x requests per CPU-second" \
  "(target ≥ 1.2); $(ratio "$(median turnpike-hit 2)" "$(median nginx-hit 2)") x requests/s;" \
  "p99 $(median turnpike-hit 3) vs $(median nginx-hit 3) µs"
echo "misses (a new key each), turnpike / nginx: $(ratio "$(median nginx-miss 4)" "$(median turnpike-miss 4)") x requests per CPU-second"
echo "turnpike miss / plain proxy: $(ratio "$(median turnpike-plain 4)" "$(median turnpike-miss 4)") x; TTL 0 / plain proxy:" \
  "$(ratio "$(median turnpike-plain 4)" "$(median turnpike-ttl0 4)") x requests per CPU-second"
echo
echo "every round (name rps p99_us cpu_us_per_request non2xx):"
printf '  %s\n' "${results[@]}"
