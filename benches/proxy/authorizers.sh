#!/usr/bin/env bash
# Authorizer benchmark: requests per proxy CPU-second of one HTTP_PROXY route three ways in the
# same process and run, rounds interleaved: without an authorizer; behind a JWT authorizer (an
# RS256 token of an RSA key made here with openssl, whose JWKS a static file server on loopback
# serves); behind a TOKEN authorizer whose function (a small host speaking the Lambda Invoke
# API, `proxy_server functions`) allows, its answer cached 300 s, so it is called once. The
# proxy on core 0, wrk, the upstream, the JWKS server and the function host on core 1; plain
# HTTP/1.1.
#
# Prerequisites (Debian): apt-get install -y wrk openssl python3 curl util-linux
# Usage: benches/proxy/authorizers.sh [duration_seconds=10] [connections=64] [rounds=3]
# Builds benches/proxy/server.rs with `--profile bench` (thin LTO) unless BENCH_BIN is set.
# Targets: JWT ≥ 0.9 × none and cached TOKEN ≥ 0.9 × none, in requests per proxy CPU-second.
set -euo pipefail

DUR=${1:-10}
CONNS=${2:-64}
ROUNDS=${3:-3}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d /tmp/turnpike-authorizers-bench.XXXXXX)
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
UP=127.0.0.1:18280
TP=127.0.0.1:18281
JWKS_PORT=18282
FUNCTIONS=127.0.0.1:18283
ISSUER="http://127.0.0.1:$JWKS_PORT"

# shellcheck source=benches/proxy/common.sh
. "$ROOT/benches/proxy/common.sh"
pids=()
trap cleanup EXIT

for tool in wrk openssl python3 taskset curl xxd basenc; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install -y wrk openssl python3 curl util-linux xxd)"; exit 1; }
done

BIN=$(bench_binary "$ROOT" bench)
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -keyout "$WORK/key.pem" -out "$WORK/cert.pem" -subj /CN=localhost >/dev/null 2>&1

# The issuer: an RSA key, its JWKS as a static file, one RS256 token valid for a day.
b64url() { basenc --base64url -w0 | tr -d '='; }
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$WORK/jwt.pem" 2>/dev/null
n=$(openssl rsa -in "$WORK/jwt.pem" -noout -modulus 2>/dev/null | cut -d= -f2 | xxd -r -p | b64url)
mkdir -p "$WORK/www"
printf '{"keys":[{"kty":"RSA","kid":"bench","use":"sig","alg":"RS256","n":"%s","e":"AQAB"}]}' "$n" \
  > "$WORK/www/jwks.json"
header=$(printf '{"alg":"RS256","typ":"JWT","kid":"bench"}' | b64url)
payload=$(printf '{"iss":"%s","aud":"bench","sub":"bench-user","scope":"bench/read","exp":%d}' \
  "$ISSUER" "$(( $(date +%s) + 86400 ))" | b64url)
signature=$(printf '%s.%s' "$header" "$payload" | openssl dgst -sha256 -sign "$WORK/jwt.pem" | b64url)
TOKEN="$header.$payload.$signature"

taskset -c "$LOAD_CPU" python3 -m http.server "$JWKS_PORT" --bind 127.0.0.1 --directory "$WORK/www" \
  >/dev/null 2>&1 & pids+=($!)
taskset -c "$LOAD_CPU" "$BIN" upstream "$UP" & pids+=($!)
taskset -c "$LOAD_CPU" "$BIN" functions "$FUNCTIONS" & pids+=($!)
BENCH_AUTHORIZED=1 BENCH_ISSUER="$ISSUER" BENCH_JWKS_URI="$ISSUER/jwks.json" BENCH_FUNCTIONS="$FUNCTIONS" \
  taskset -c "$PROXY_CPU" "$BIN" turnpike "$TP" 127.0.0.1:0 "$UP" "$WORK/cert.pem" "$WORK/key.pem" & pids+=($!)
TP_PID=$!
cpu_quota "$TP_PID" turnpike
HOST=$("$BIN" host)

status() { curl -s -o /dev/null -w '%{http_code}' -H "Host: $HOST" "$@"; }
# The JWKS server must answer before the first token is checked: a failed key fetch is an
# AuthorizerConfigurationException, and the keys are not fetched again at once.
for i in $(seq 1 100); do
  curl -sf -o /dev/null "$ISSUER/jwks.json" && break
  sleep 0.1
done
for i in $(seq 1 100); do
  [ "$(status "http://$TP/prod/hello")" = 200 ] && break
  sleep 0.1
done
[ "$(status "http://$TP/prod/jwt/hello")" = 401 ] || { echo "the JWT route answered without a token"; exit 1; }
[ "$(status "http://$TP/prod/fn/hello")" = 401 ] || { echo "the TOKEN route answered without a token"; exit 1; }
code=$(status -H "Authorization: Bearer $TOKEN" "http://$TP/prod/jwt/hello")
[ "$code" = 200 ] || { echo "the JWT route answered $code to the token"; exit 1; }
code=$(status -H "Authorization: Bearer bench" "http://$TP/prod/fn/hello")
[ "$code" = 200 ] || { echo "the TOKEN route answered $code"; exit 1; }

results=()
for round in $(seq 1 "$ROUNDS"); do
  echo "round $round of $ROUNDS" >&2
  results+=("$(wrk_round none "$TP_PID" "http://$TP/prod/hello" -H "Host: $HOST")")
  results+=("$(wrk_round jwt "$TP_PID" "http://$TP/prod/jwt/hello" -H "Host: $HOST" -H "Authorization: Bearer $TOKEN")")
  results+=("$(wrk_round token "$TP_PID" "http://$TP/prod/fn/hello" -H "Host: $HOST" -H "Authorization: Bearer bench")")
done

echo
echo "wrk -t1 -c$CONNS -d${DUR}s; proxy on CPU $PROXY_CPU, wrk + upstream + JWKS server + function host on CPU $LOAD_CPU; median of $ROUNDS rounds"
echo "$(quota_note)"
echo
echo "| route | requests/s | proxy CPU µs / request | requests per proxy CPU-second | non-2xx |"
echo "|---|---:|---:|---:|---:|"
for t in none jwt token; do
  cpu=$(median $t 3)
  echo "| $t | $(median $t 2) | $cpu | $(awk -v c="$cpu" 'BEGIN { if (c > 0) printf "%.0f", 1e6 / c; else print "n/a" }') | $(median $t 4) |"
done
echo
for t in jwt token; do
  echo "$t / none: $(ratio "$(median $t 2)" "$(median none 2)") x requests/s, $(ratio "$(median none 3)" "$(median $t 3)") x requests per proxy CPU-second (target ≥ 0.9)"
done
echo
echo "every round:"
printf '  %s\n' "${results[@]}"
