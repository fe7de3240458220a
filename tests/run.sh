#!/usr/bin/env bash
# The test command: installs what the tests need, then checks formatting, runs clippy with
# warnings denied, and runs every test (Rust and Python, against real clients).
#
#   ./tests/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# A full run builds everything once: incremental caches would only cost time and disk
# (several GiB across the test binaries). Set CARGO_INCREMENTAL=1 to keep them.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

./tests/setup.sh

echo "== cargo fmt --check (at ${SECONDS}s)"
cargo fmt --all -- --check

echo "== cargo clippy -D warnings (at ${SECONDS}s)"
cargo clippy --locked --workspace --all-targets -- -D warnings
# The slim binary (no embedded API server) must keep building.
cargo clippy --locked --bin turnpike --no-default-features -- -D warnings

echo "== cargo test (at ${SECONDS}s)"
# Each layer builds and passes its unit tests alone (with only its own dependencies and
# features), then the end-to-end tests of the whole run against the binary (which `cargo test
# -p turnpike` builds, as target/debug/turnpike, for them and for pytest).
for crate in core api openapi telemetry proxy controller apiserver; do
  cargo test --locked -p "turnpike-$crate"
done
TURNPIKE_BIN="$PWD/target/debug/turnpike" cargo test --locked -p turnpike

# The fuzz targets build meanwhile: the Python tests mostly wait on the processes they start.
fuzz_build_log="$(mktemp)"
# (In a session of its own, so that a failed test stops the whole build.)
setsid ./fuzz/run.sh --build-only >"$fuzz_build_log" 2>&1 &
fuzz_build=$!
trap 'kill -- -"$fuzz_build" 2>/dev/null || true; rm -f "$fuzz_build_log"' EXIT

if [ -d tests/python ]; then
  echo "== pytest (kubectl, the Python kubernetes client, the Helm SDK) (at ${SECONDS}s)"
  # Two at a time (pytest-xdist): each test starts its own processes, in a directory of its
  # own on ports the OS picks, and mostly waits on them.
  TURNPIKE_BIN="$PWD/target/debug/turnpike" .venv/bin/python -m pytest -q -n 2 tests/python
fi

echo "== fuzz (every target, bounded) (at ${SECONDS}s)"
if ! wait "$fuzz_build"; then
  cat "$fuzz_build_log"
  echo "the fuzz targets did not build"
  exit 1
fi
./fuzz/run.sh "${FUZZ_SECONDS:-10}"
echo "== done in ${SECONDS}s"

