#!/usr/bin/env bash
# Prints the isolation report: every attack of tests/isolation_*.rs against the provider binary,
# with how fast it was refused, the slowest Version and /healthz answers while it ran, and the
# provider's peak memory growth. Runs inside `unshare -n` where permitted (loopback only).
#   bash scripts/isolation-report.sh [extra cargo args, e.g. --release]
set -euo pipefail
cd "$(dirname "$0")/.."
features=(--features test-redirect)
cargo metadata --format-version 1 --no-deps 2>/dev/null | grep -q '"test-redirect"' || features=()
tests=()
for f in tests/isolation_*.rs; do tests+=(--test "$(basename "$f" .rs)"); done
run=(cargo test --locked "${features[@]}" "$@" "${tests[@]}" -- --nocapture --test-threads=1)
if unshare -n true 2>/dev/null; then
  unshare -n bash -c 'ip link set lo up 2>/dev/null || true; exec "$@"' bash "${run[@]}" 2>&1 | grep -oE 'attack .*' || true
else
  "${run[@]}" 2>&1 | grep -oE 'attack .*' || true
fi
