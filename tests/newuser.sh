#!/usr/bin/env bash
# The new user's path, exactly as README.md gives it, as a script a person can run:
#
#   1. `turnpike local --examples`, and wait for its summary;
#   2. the printed `export KUBECONFIG=...`, then `kubectl get turnpike`: every object READY;
#   3. the printed curl commands answer the examples' data; the keyed one without its key;
#   4. a canary edit with kubectl shifts the traffic;
#   5. Ctrl-C stops it within seconds; a second start serves the same objects on the same ports.
#
#   tests/newuser.sh          # uses $TURNPIKE_BIN, else target/debug/turnpike
#
# It runs in a fresh directory (the data dir is ./.turnpike, as for a user). Every wait is
# bounded. It prints what it checks; it exits 1 if a check failed (each failure is a FAIL: line).
set -uo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
turnpike="${TURNPIKE_BIN:-$repo/target/debug/turnpike}"
kubectl="${KUBECTL:-kubectl}"
work="$(mktemp -d)"
cd "$work"
failed=0
pid=""

fail() { echo "FAIL: $*"; failed=1; }
ok() { echo "ok: $*"; }
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; fi
  [ -n "${KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT

# Starts `turnpike local --examples` (stdout to $1) and waits for the summary's curl lines.
start() {
  "$turnpike" local --examples >"$1" 2>>turnpike.log &
  pid=$!
  for _ in $(seq 1 600); do
    grep -q '^  curl ' "$1" && return 0
    kill -0 "$pid" 2>/dev/null || { echo "turnpike exited:"; cat turnpike.log; exit 1; }
    sleep 0.2
  done
  echo "no summary after 120s:"; cat "$1" turnpike.log; exit 1
}

# Ctrl-C, then waits (at most 10 s) for the process to end.
stop() {
  kill -INT "$pid"
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; pid=""; ok "Ctrl-C stopped turnpike"; return; }
    sleep 0.1
  done
  fail "turnpike still running 10 s after Ctrl-C"
}

# Runs a printed curl command (silently, with the status appended on its own line).
run_curl() { eval "$1 -sS -w '\n%{http_code}'"; }

echo "== 1. turnpike local --examples"
start first.txt
cat first.txt
if grep -q $'\x1b' turnpike.log; then fail "escape codes in a log that is not a terminal"; else ok "plain log lines on a non-terminal"; fi

echo "== 2. kubectl get turnpike"
eval "$(grep -m1 '^  export KUBECONFIG=' first.txt)"
"$kubectl" get turnpike
not_ready="$("$kubectl" get turnpike --no-headers | awk '$NF != "True" && $(NF-1) != "True"')"
[ -z "$not_ready" ] && ok "every object READY" || fail "not READY: $not_ready"

echo "== 3. the printed curl commands"
check_body() { # name, command, expected substring
  local out status body
  out="$(run_curl "$2")"; status="${out##*$'\n'}"; body="${out%$'\n'*}"
  if [ "$status" = 200 ] && [[ "$body" == *"$3"* ]]; then ok "$1: 200 $body"; else fail "$1: $status $body"; fi
}
while IFS= read -r line; do
  case "$line" in
    *x-api-key*) check_body "with the API key" "$line" '"type":"dog"'
                 keyed="$line" ;;
    */hello*)    check_body "MOCK" "$line" '"hello, world"' ;;
    */time/*)    check_body "stage cache" "$line" '"producedBy"' ;;
    */quotes/*)  check_body "shared stage cache" "$line" '"producedBy"' ;;
    */entries*)  check_body "PRIVATE" "$line" '"entries"' ;;
    */orders*)   check_body "validation" "$line" '"orders"'
                 orders="$line" ;;
    */pets*)     check_body "petstore" "$line" '"type":"dog"' ;;
    */health*)   check_body "OpenAPI import (a merged MOCK)" "$line" '"healthy"' ;;
    *)           fail "unexpected curl line: $line" ;;
  esac
done < <(grep '^  curl ' first.txt)
nokey="$(echo "$keyed" | sed "s/ -H 'x-api-key: [^']*'//")"
out="$(run_curl "$nokey")"; status="${out##*$'\n'}"
echo "without the key: $status ${out%$'\n'*}"
[ "$status" = 403 ] && ok "without the key: 403" || fail "without the key: $status, want 403 (NOKEY=$status)"

# The validated POST of the same API: a body its model refuses stops at the gateway.
orders_url="$(echo "$orders" | grep -o "'https[^']*'" | tr -d "'")"
out="$(curl -k -sS -w '\n%{http_code}' -X POST -H 'Content-Type: application/json' \
  -d '{"items": [{"sku": "x", "qty": "two"}]}' "${orders_url}?customer=ann")"
[[ "$out" == *'{"message": "Invalid request body"}'$'\n400' ]] && ok "an invalid body: 400" || fail "an invalid body: $out"

echo "== 4. a canary edit with kubectl"
shop="$(grep '^  curl ' first.txt | grep -F "$("$kubectl" get stage shop-prod -o jsonpath='{.status.invokeUrl}')")"
never="curl -k -H 'x-turnpike-canary: never'"
always="curl -k -H 'x-turnpike-canary: always'"
out="$(run_curl "${shop/curl -k/$never}")"
[[ "$out" == *$'\n200' && "$out" != *'"name"'* ]] && ok "the primary answers v1" || fail "the primary: $out"
out="$(run_curl "${shop/curl -k/$always}")"
[[ "$out" == *$'\n200' && "$out" == *'"name"'* ]] && ok "the canary answers v2" || fail "the canary: $out"
"$kubectl" patch stage shop-prod --type=merge -p '{"spec":{"canarySettings":{"percentTraffic":100}}}'
# The edit serves once the Stage's Ready condition observes its generation (the controller
# writes status after it publishes the table): a request answered by the canary before then
# may be the old 10%.
generation="$("$kubectl" get stage shop-prod -o jsonpath='{.metadata.generation}')"
shifted=""
for _ in $(seq 1 100); do
  observed="$("$kubectl" get stage shop-prod -o jsonpath='{.status.conditions[?(@.type=="Ready")].observedGeneration}')"
  [ "$observed" = "$generation" ] && { shifted=1; break; }
  sleep 0.1
done
if [ -n "$shifted" ]; then
  v2=0; for _ in $(seq 1 20); do [[ "$(run_curl "$shop")" == *'"name"'* ]] && v2=$((v2 + 1)); done
  [ "$v2" = 20 ] && ok "percentTraffic 100: 20 of 20 requests on the canary" || fail "percentTraffic 100: $v2 of 20 on the canary"
else
  fail "the canary edit was not observed (generation $generation, observed ${observed:-none})"
fi

echo "== 5. Ctrl-C and start again"
ports="$(cat .turnpike/ports.json)"
stop
start second.txt
[ "$(cat .turnpike/ports.json)" = "$ports" ] && ok "same ports: $ports" || fail "ports moved: $ports -> $(cat .turnpike/ports.json)"
diff <(grep -A20 '^Stages:' first.txt) <(grep -A20 '^Stages:' second.txt) >/dev/null \
  && ok "same invoke URLs" || fail "the invoke URLs changed"
pct="$("$kubectl" get stage shop-prod -o jsonpath='{.spec.canarySettings.percentTraffic}')"
[ "$pct" = 100 ] && ok "the kubectl edit survived the restart" || fail "percentTraffic after restart: $pct"
check_body "petstore after restart" "$(grep -m1 "^  curl -k 'https.*/pets'" second.txt)" '"type":"dog"'
stop

[ "$failed" = 0 ] && echo "PASS" || echo "FAILED"
exit "$failed"
