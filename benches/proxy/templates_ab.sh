#!/usr/bin/env bash
# Mapping templates, two builds side by side: the routes of `templates.sh` (untemplated,
# identity, templated) served by two builds of the benchmark binary at once, each proxy in its
# own CPU quota group on the same core, rounds interleaved route by route and build by build.
# On a machine whose speed drifts between runs, this compares two versions of the template
# engine in one run rather than across two.
# Plain HTTP/1.1; both proxies on core 0, wrk and the upstream on core 1.
#
# Prerequisites (Debian): apt-get install -y wrk openssl curl util-linux
# Usage: benches/proxy/templates_ab.sh BASELINE_BIN CANDIDATE_BIN [duration_seconds=8] [connections=64] [rounds=5]
#   (each BIN built with `cargo build --profile bench --bench proxy_server`; copy the first
#   aside before building the second, as both land at the same path)
set -euo pipefail

BASE=${1:?baseline benchmark binary}
CAND=${2:?candidate benchmark binary}
DUR=${3:-8}
CONNS=${4:-64}
ROUNDS=${5:-5}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d /tmp/turnpike-templates-ab.XXXXXX)
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
UP=127.0.0.1:18197

# shellcheck source=benches/proxy/common.sh
. "$ROOT/benches/proxy/common.sh"
pids=()
trap cleanup EXIT

for tool in wrk openssl taskset curl; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install -y wrk openssl curl util-linux)"; exit 1; }
done

order_post "$WORK" "$CAND"

taskset -c "$LOAD_CPU" "$CAND" upstream "$UP" & pids+=($!)
declare -A addr pid
addr[baseline]=127.0.0.1:18198
addr[candidate]=127.0.0.1:18199
BENCH_TEMPLATED=1 taskset -c "$PROXY_CPU" "$BASE" turnpike "${addr[baseline]}" 127.0.0.1:0 "$UP" "$WORK/cert.pem" "$WORK/key.pem" & pids+=($!)
pid[baseline]=$!
cpu_quota "${pid[baseline]}" baseline
BENCH_TEMPLATED=1 taskset -c "$PROXY_CPU" "$CAND" turnpike "${addr[candidate]}" 127.0.0.1:0 "$UP" "$WORK/cert.pem" "$WORK/key.pem" & pids+=($!)
pid[candidate]=$!
cpu_quota "${pid[candidate]}" candidate
HOST=$("$CAND" host)

post() { curl -s -H "Host: $HOST" -H 'Content-Type: application/json' --data-binary "@$WORK/body.json" "$@"; }
for build in baseline candidate; do
  for _ in $(seq 1 100); do
    [ "$(post -o /dev/null -w '%{http_code}' "http://${addr[$build]}/prod/t/orders?source=bench")" = 200 ] && break
    sleep 0.1
  done
  out=$(post "http://${addr[$build]}/prod/t/orders?source=bench")
  echo "$out" | grep -q '"state": "ACCEPTED"' || { echo "the $build templated route answered: $out"; exit 1; }
done

declare -A path=([untemplated]="/prod/plain/orders" [identity]="/prod/id/orders" [templated]="/prod/t/orders?source=bench")
results=()
for round in $(seq 1 "$ROUNDS"); do
  echo "round $round of $ROUNDS" >&2
  for route in untemplated identity templated; do
    for build in baseline candidate; do
      results+=("$(wrk_round "$build-$route" "${pid[$build]}" "http://${addr[$build]}${path[$route]}" -s "$WORK/post.lua" -H "Host: $HOST")")
    done
  done
done

echo
echo "POST of a 1 KiB JSON order to an HTTP integration; wrk -t1 -c$CONNS -d${DUR}s; both proxies on CPU $PROXY_CPU, wrk + upstream on CPU $LOAD_CPU; median of $ROUNDS rounds"
echo "$(quota_note)"
echo
echo "| build | route | requests/s | proxy CPU µs / request | requests per proxy CPU-second |"
echo "|---|---|---:|---:|---:|"
for build in baseline candidate; do
  for route in untemplated identity templated; do
    cpu=$(median "$build-$route" 3)
    echo "| $build | $route | $(median "$build-$route" 2) | $cpu | $(awk -v c="$cpu" 'BEGIN { if (c > 0) printf "%.0f", 1e6 / c; else print "n/a" }') |"
  done
done
echo
for build in baseline candidate; do
  echo "$build templated / untemplated: $(ratio "$(median "$build-untemplated" 3)" "$(median "$build-templated" 3)") x requests per CPU-second (target ≥ 0.8)"
done
echo
echo "every round:"
printf '  %s\n' "${results[@]}"
