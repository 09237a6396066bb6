#!/usr/bin/env bash
# All of Neverust's tests: formatting, lints, the known-answer files, unit/property/
# integration tests, the OpenAPI fuzzing of a real node, and the visualizer page in a real
# headless Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

echo "== fmt";    cargo fmt --all -- --check
echo "== clippy"; cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "== golden"; python3 scripts/golden_content.py --check && python3 deploy/grafana/dashboards.py --check
if [ -n "${ARCHIVIST_BIN:-}" ]; then
  echo "== tests (with the Archivist interop checks against $ARCHIVIST_BIN)"
else
  echo "== tests (the Archivist interop checks are SKIPPED: set ARCHIVIST_BIN to an Archivist binary to run them)"
fi
cargo test --workspace
echo "== api fuzz"; bash scripts/api-fuzz.sh
echo "== viz browser"; python3 scripts/viz-browser-test.py
