#!/usr/bin/env bash
# Fuzzes every endpoint of a real node against the OpenAPI document it serves
# (schemathesis): any 5xx, undocumented status, wrong content type or schema violation fails.
# Bounded: a fixed number of examples per operation and a time budget. The node trades
# (--mode marketplace, keeping its own market ledger), so the market routes answer too.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${NEVERUST_BIN:-${CARGO_TARGET_DIR:-target}/debug/neverust}"
data=$(mktemp -d)
out=$(mktemp)
cleanup() { [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$data" "$out"; }
trap cleanup EXIT

"$bin" start --api-port 0 --listen-port 0 --disc-port 0 --listen-ip 127.0.0.1 \
  --data-dir "$data" --log-level warn --storage-quota 256MiB --mode marketplace >"$out" &
pid=$!
for _ in $(seq 1 100); do grep -q '^READY ' "$out" && break; sleep 0.1; done
base=$(sed -n 's/^READY api=\([^ ]*\).*/\1/p' "$out")
[ -n "$base" ] || { echo "api-fuzz: node did not start"; exit 1; }

schemathesis run "$base/api/archivist/v1/openapi.yaml" --url "$base" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
  --phases examples,coverage,fuzzing --max-examples "${FUZZ_EXAMPLES:-60}" --max-time "${FUZZ_SECONDS:-90}" \
  --workers 2 --request-timeout 30 --suppress-health-check all --warnings off
