#!/usr/bin/env bash
# Proxy benchmark: wrk against (a) the upstream directly, (b) nginx as a reverse proxy with an
# upstream keep-alive pool, (c) Turnpike on an HTTP_PROXY route — same run, same pinning: the
# proxy under test on core 0, wrk and the upstream on core 1. Plain HTTP/1.1 and over TLS.
#
# Prerequisites (Debian): apt-get install -y wrk nginx-light openssl   (curl for the checks)
# Usage: benches/proxy/run.sh [duration_seconds=10] [connections=64] [rounds=3]
# Output: a Markdown table (rps, p50, p99, CPU per request, how busy the proxy core and the
# load core were) with the median of the rounds, and the ratios Turnpike / nginx. When the
# load core is saturated and the proxy core is not, requests/s measured wrk and the upstream:
# requests per CPU-second of the proxy is then the ratio that compares the proxies, and the
# load side's CPU per request gives the most requests/s the load core could carry (its
# ceiling). The targets run in turn within each round, so a noisy moment on a shared machine
# hits one round of every target rather than all rounds of one.
set -euo pipefail

DUR=${1:-10}
CONNS=${2:-64}
ROUNDS=${3:-3}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d /tmp/turnpike-bench.XXXXXX)
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
UP=127.0.0.1:18080
NGX_PLAIN=127.0.0.1:18081
NGX_TLS=127.0.0.1:18443
TP_PLAIN=127.0.0.1:18082
TP_TLS=127.0.0.1:18444

# shellcheck source=benches/proxy/common.sh
. "$ROOT/benches/proxy/common.sh"
pids=()
trap cleanup EXIT

for tool in wrk nginx openssl taskset curl; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install -y wrk nginx-light openssl curl util-linux)"; exit 1; }
done

BIN=$(bench_binary "$ROOT" release)
write_nginx_conf "$WORK" "$UP" "$NGX_PLAIN" "$NGX_TLS"

taskset -c "$LOAD_CPU" "$BIN" upstream "$UP" & pids+=($!)
UP_PID=$!
taskset -c "$PROXY_CPU" nginx -c "$WORK/nginx.conf" -g 'daemon off;' & pids+=($!)
NGX_PID=$!
taskset -c "$PROXY_CPU" "$BIN" turnpike "$TP_PLAIN" "$TP_TLS" "$UP" "$WORK/cert.pem" "$WORK/key.pem" & pids+=($!)
TP_PID=$!
HOST=$("$BIN" host)

for i in $(seq 1 100); do
  if curl -sf -o /dev/null "http://$UP/" && curl -sf -o /dev/null "http://$NGX_PLAIN/" \
     && curl -sf -o /dev/null -H "Host: $HOST" "http://$TP_PLAIN/prod/"; then break; fi
  sleep 0.1
done
curl -sfk -o /dev/null -H "Host: $HOST" "https://$TP_TLS/prod/x" || { echo "turnpike TLS not answering"; exit 1; }
curl -sfk -o /dev/null "https://$NGX_TLS/x" || { echo "nginx TLS not answering"; exit 1; }
cpu_quota "$NGX_PID" nginx
cpu_quota "$TP_PID" turnpike

HZ=$(getconf CLK_TCK)

# Busy and idle ticks of one CPU (from /proc/stat).
core_ticks() {
  awk -v c="cpu$1" '$1 == c { print $2 + $3 + $4 + $7 + $8, $5 + $6 }' /proc/stat
}
# busy_pct "BUSY IDLE" "BUSY IDLE": the share of the interval the CPU was busy.
busy_pct() {
  echo "$1 $2" | awk '{ b = $3 - $1; i = $4 - $2; if (b + i > 0) printf "%.0f", 100 * b / (b + i); else print "n/a" }'
}

# run NAME URL PID [HOST]: prints "NAME rps p50_us p99_us cpu_us_per_request user_us_per_request
# proxy_core_busy_pct load_core_busy_pct load_us_per_request"
# The CPU cost per request (CPU time of the process under test / requests served) depends
# less on how busy the rest of the machine is than requests/s does. A run whose load core is
# saturated while the proxy core is not measured the load generator, not the proxy: the load
# side's own CPU per request (wrk's and the upstream's) shows what it can carry, one core's
# second divided by it.
run() {
  local name=$1 url=$2 pid=$3 host=${4:-}
  local hdr=()
  [ -n "$host" ] && hdr=(-H "Host: $host")
  taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d2s "${hdr[@]}" "$url" >/dev/null 2>&1 # warm-up
  local out before after ubefore uafter upbefore upafter wrk_cpu
  local pbefore lbefore pafter lafter
  before=$(cpu_ticks "$pid"); ubefore=$(cpu_ticks "$pid" user); upbefore=$(cpu_ticks "$UP_PID")
  pbefore=$(core_ticks "$PROXY_CPU"); lbefore=$(core_ticks "$LOAD_CPU")
  # wrk's own CPU seconds (user + system), from the shell's `time`.
  wrk_cpu=$( { TIMEFORMAT='%3U %3S'; time taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"${DUR}s" --latency \
    "${hdr[@]}" "$url" >"$WORK/wrk.out" 2>&1; } 2>&1 | awk '{ print $1 + $2 }')
  out=$(cat "$WORK/wrk.out")
  after=$(cpu_ticks "$pid"); uafter=$(cpu_ticks "$pid" user); upafter=$(cpu_ticks "$UP_PID")
  pafter=$(core_ticks "$PROXY_CPU"); lafter=$(core_ticks "$LOAD_CPU")
  local errors
  errors=$(echo "$out" | grep -E "Non-2xx|Socket errors" || true)
  [ -n "$errors" ] && echo "WARNING $name: $errors" >&2
  local rps p50 p99 total
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  # Latencies in µs, whatever unit wrk printed.
  us() { awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) print n; else if (v ~ /ms$/) print n * 1000; else if (v ~ /s$/) print n * 1e6; else print n }'; }
  p50=$(us "$(echo "$out" | awk '$1=="50%" {print $2}')")
  p99=$(us "$(echo "$out" | awk '$1=="99%" {print $2}')")
  total=$(echo "$out" | awk '/requests in/ {print $1}')
  per() { awk -v t="$1" -v hz="$HZ" -v n="$total" 'BEGIN { if (n > 0) printf "%.2f", t / hz * 1e6 / n; else print "n/a" }'; }
  local load
  load=$(awk -v w="$wrk_cpu" -v u=$((upafter - upbefore)) -v hz="$HZ" -v n="$total" \
    'BEGIN { if (n > 0) printf "%.2f", (w + u / hz) * 1e6 / n; else print "n/a" }')
  echo "$name $rps $p50 $p99 $(per $((after - before))) $(per $((uafter - ubefore)))" \
    "$(busy_pct "$pbefore" "$pafter") $(busy_pct "$lbefore" "$lafter") $load"
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
results=()
for round in $(seq 1 "$ROUNDS"); do
  echo "round $round of $ROUNDS" >&2
  results+=("$(run direct-plain "http://$UP/hello" "$UP_PID")")
  results+=("$(run nginx-plain "http://$NGX_PLAIN/hello" "$NGX_PID")")
  results+=("$(run turnpike-plain "http://$TP_PLAIN/prod/hello" "$TP_PID" "$HOST")")
  results+=("$(run nginx-tls "https://$NGX_TLS/hello" "$NGX_PID")")
  results+=("$(run turnpike-tls "https://$TP_TLS/prod/hello" "$TP_PID" "$HOST")")
done

# median NAME COLUMN: the median over the rounds of a column (2 rps, 3 p50, 4 p99, 5 CPU,
# 6 user CPU, 7 proxy core busy %, 8 load core busy %, 9 load side CPU).
median() {
  printf '%s\n' "${results[@]}" | awk -v n="$1" -v c="$2" '$1 == n { print $c }' | sort -g \
    | awk '{ v[NR] = $1 } END { if (NR == 0) print "n/a"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

echo
echo "wrk -t1 -c$CONNS -d${DUR}s --latency; proxy on CPU $PROXY_CPU, wrk + upstream on CPU $LOAD_CPU; $(nproc) CPUs;" \
  "median of $ROUNDS rounds"
echo "$(quota_note)"
echo
echo "load average before the run: $LOAD_BEFORE"
echo
echo "| target | requests/s | p50 (µs) | p99 (µs) | CPU µs / request | of which user | proxy core busy | load core busy | load side CPU µs / request |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
for t in direct-plain nginx-plain turnpike-plain nginx-tls turnpike-tls; do
  echo "| $t | $(median $t 2) | $(median $t 3) | $(median $t 4) | $(median $t 5) | $(median $t 6) | $(median $t 7)% | $(median $t 8)% | $(median $t 9) |"
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
echo
for proto in plain tls; do
  echo "turnpike / nginx ($proto): $(ratio "$(median "turnpike-$proto" 2)" "$(median "nginx-$proto" 2)") x requests/s;" \
    "$(ratio "$(median "nginx-$proto" 5)" "$(median "turnpike-$proto" 5)") x requests per CPU-second;" \
    "p99 $(median "turnpike-$proto" 4) vs $(median "nginx-$proto" 4) µs"
done
# The load core's ceiling in Turnpike's rounds: one second of that core over the load side's
# CPU per request, and that ceiling as a multiple of nginx's requests/s: the most the
# requests/s ratio could show on this machine, however cheap the proxy.
for proto in plain tls; do
  ceiling=$(awk -v l="$(median "turnpike-$proto" 9)" 'BEGIN { if (l > 0) printf "%.0f", 1e6 / l; else print 0 }')
  echo "load core ceiling ($proto): $ceiling requests/s, $(ratio "$ceiling" "$(median "nginx-$proto" 2)") x nginx's requests/s"
done
# Within a round the two proxies run a few seconds apart, so the ratio of each round is less
# exposed to the machine's drift than the ratio of the medians: their median, min and max.
round_ratios() {
  printf '%s\n' "${results[@]}" | awk -v p="$1" -v c="$2" -v inv="${3:-}" '
    $1 == "turnpike-" p { t[++nt] = $c }
    $1 == "nginx-" p { n[++nn] = $c }
    END { for (i = 1; i <= nt && i <= nn; i++) if (t[i] > 0 && n[i] > 0) print (inv ? n[i] / t[i] : t[i] / n[i]) }' \
    | sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "n/a"; else printf "%.2f (min %.2f, max %.2f)", (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2), v[1], v[NR] }'
}
echo
echo "ratios per round (median of the rounds):"
for proto in plain tls; do
  echo "  $proto: requests/s $(round_ratios "$proto" 2); requests per CPU-second $(round_ratios "$proto" 5 inv);" \
    "p99 nginx / turnpike $(round_ratios "$proto" 4 inv)"
done
echo
echo "every round:"
printf '  %s\n' "${results[@]}"
