#!/usr/bin/env bash
# Runs every fuzz target for a bounded time, seeded with its committed corpus (corpus/TARGET/);
# a crash, a hang or a leak fails the run, and the input that caused it is kept in
# fuzz/artifacts/TARGET/ (reproduce with `cargo +nightly fuzz run TARGET THAT_FILE`).
#
#   fuzz/run.sh [SECONDS_PER_TARGET]      (default 10; needs the nightly toolchain and cargo-fuzz)
#
# What the fuzzer finds is written to a scratch directory, never into the committed corpus.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-10}"
targets=(h1_request h1_response chunked normalize_path routing convert cel gateway_text cache_request cache_entry authorizer mapping_template jsonpath openapi_import websocket relay_envelope body_validation template_tape)
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

# One build for all targets: libFuzzer instrumentation without a sanitizer (the workspace
# forbids unsafe code), with debug assertions and overflow checks on. Sixteen codegen units
# rather than cargo-fuzz's one: a run of seconds per target gains less from the faster code
# than the single unit costs in build time (fuzz/Cargo.toml: the profile).
flags=(--release --debug-assertions --sanitizer none --codegen-units 16)
cargo +nightly fuzz build "${flags[@]}"

for t in "${targets[@]}"; do
  echo "== fuzz $t (${seconds}s)"
  mkdir -p "$scratch/$t" "fuzz/artifacts/$t"
  # The scratch directory first: libFuzzer adds what it finds to the first corpus directory.
  if ! cargo +nightly fuzz run "${flags[@]}" "$t" "$scratch/$t" "fuzz/corpus/$t" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=8192 \
    -print_final_stats=1 >"$scratch/$t.log" 2>&1; then
    tail -n 60 "$scratch/$t.log"
    echo "fuzz target $t failed; the input is in fuzz/artifacts/$t/"
    exit 1
  fi
  grep -E '^stat::(number_of_executed_units|peak_rss_mb)' "$scratch/$t.log" | tr '\n' ' '
  echo
done
