#!/usr/bin/env bash
# Runs every fuzz target for a bounded time, seeded with its committed corpus (corpus/TARGET/);
# a crash, a hang or a leak fails the run, and the input that caused it is kept in
# fuzz/artifacts/TARGET/ (reproduce with `cargo +nightly fuzz run TARGET THAT_FILE`).
#
#   fuzz/run.sh [SECONDS_PER_TARGET]      (default 10; needs the nightly toolchain and cargo-fuzz)
#   fuzz/run.sh --build-only              (the build alone, which a later run then finds done)
#
# FUZZ_JOBS targets run at once (default: one per core), each for the full time on a core of
# its own. What the fuzzer finds is written to a scratch directory, never into the committed
# corpus.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-10}"
jobs="${FUZZ_JOBS:-$(nproc)}"
targets=(h1_request h1_response chunked normalize_path routing convert cel gateway_text cache_request cache_entry authorizer mapping_template jsonpath openapi_import websocket relay_envelope body_validation template_tape)
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

# One build for all targets: libFuzzer instrumentation without a sanitizer (the workspace
# forbids unsafe code), with debug assertions and overflow checks on. Sixteen codegen units
# rather than cargo-fuzz's one: a run of seconds per target gains less from the faster code
# than the single unit costs in build time (fuzz/Cargo.toml: the profile).
cargo +nightly fuzz build --release --debug-assertions --sanitizer none --codegen-units 16
[ "$seconds" = --build-only ] && exit 0
bin_dir="fuzz/target/$(rustc +nightly -vV | sed -n 's/^host: //p')/release"

# fuzz TARGET: runs it (the built binary itself, as `cargo fuzz run` would, without a cargo
# per target) and leaves its exit status in the scratch directory.
fuzz() {
  local t=$1 status=0
  mkdir -p "$scratch/$t" "fuzz/artifacts/$t"
  # The scratch directory first: libFuzzer adds what it finds to the first corpus directory.
  "$bin_dir/$t" -artifact_prefix="fuzz/artifacts/$t/" \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=8192 \
    -print_final_stats=1 "$scratch/$t" "fuzz/corpus/$t" >"$scratch/$t.log" 2>&1 || status=$?
  echo "$status" >"$scratch/$t.status"
}

for t in "${targets[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
  echo "== fuzz $t (${seconds}s)"
  fuzz "$t" &
done
wait

failed=0
for t in "${targets[@]}"; do
  if [ "$(cat "$scratch/$t.status")" != 0 ]; then
    tail -n 60 "$scratch/$t.log"
    echo "fuzz target $t failed; the input is in fuzz/artifacts/$t/"
    failed=1
  else
    echo "$t: $(grep -E '^stat::(number_of_executed_units|peak_rss_mb)' "$scratch/$t.log" | tr '\n' ' ')"
  fi
done
exit "$failed"
