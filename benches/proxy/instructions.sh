#!/usr/bin/env bash
# User-space instructions per proxied request, Turnpike and nginx, counted by callgrind.
#
# Unlike requests/s and CPU time, an instruction count does not move with what else runs on
# the machine, so it shows a change of a few percent in the proxy's own work. Both proxies
# run under valgrind on the same plain HTTP route as benches/proxy/run.sh, with the same
# upstream; counting starts after a warm-up and covers only the measured load.
#
# Prerequisites (Debian): apt-get install -y valgrind wrk nginx-light openssl curl
# Usage: benches/proxy/instructions.sh [seconds=8]   (BENCH_BIN= skips the build;
#        KEEP=DIR keeps the callgrind profiles there, for callgrind_annotate --inclusive=yes)
set -euo pipefail

DUR=${1:-8}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d /tmp/turnpike-instr.XXXXXX)
UP=127.0.0.1:18180
TP=127.0.0.1:18182
NGX=127.0.0.1:18181

# shellcheck source=benches/proxy/common.sh
. "$ROOT/benches/proxy/common.sh"
pids=()
trap cleanup EXIT

for tool in valgrind callgrind_control callgrind_annotate wrk nginx openssl curl; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install -y valgrind wrk nginx-light openssl curl)"; exit 1; }
done

BIN=$(bench_binary "$ROOT" release)
write_nginx_conf "$WORK" "$UP" "$NGX" 127.0.0.1:18184

"$BIN" upstream "$UP" & pids+=($!)
HOST=$("$BIN" host)

# count NAME URL [HOST] -- COMMAND...: runs COMMAND under callgrind and prints the
# instructions per request of a wrk load against URL.
count() {
  local name=$1 url=$2 host=$3
  shift 4
  local hdr=()
  [ -n "$host" ] && hdr=(-H "Host: $host")
  valgrind --tool=callgrind --dump-instr=no --callgrind-out-file="$WORK/$name.%p" "$@" \
    >"$WORK/$name.log" 2>&1 &
  local vg=$!
  pids+=("$vg")
  for _ in $(seq 1 120); do
    curl -sf -o /dev/null "${hdr[@]}" "$url" && break
    sleep 0.5
  done
  wrk -t1 -c8 -d3s "${hdr[@]}" "$url" >/dev/null
  callgrind_control -z "$vg" >/dev/null 2>&1
  local n
  n=$(wrk -t1 -c8 -d"${DUR}s" "${hdr[@]}" "$url" | awk '/requests in/ {print $1}')
  callgrind_control -d "$vg" >/dev/null 2>&1
  sleep 1
  kill "$vg" 2>/dev/null || true
  wait "$vg" 2>/dev/null || true
  local file total
  file=$(ls "$WORK/$name".*.1 | head -1)
  total=$(callgrind_annotate "$file" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }')
  if [ -n "${KEEP:-}" ]; then mkdir -p "$KEEP" && cp "$file" "$KEEP/$name.callgrind"; fi
  echo "$name: $n requests, $((total / n)) user instructions per request"
}

count turnpike "http://$TP/prod/hello" "$HOST" -- \
  "$BIN" turnpike "$TP" 127.0.0.1:18183 "$UP" "$WORK/cert.pem" "$WORK/key.pem"
count nginx "http://$NGX/hello" "" -- nginx -c "$WORK/nginx.conf" -g 'daemon off; master_process off;'
