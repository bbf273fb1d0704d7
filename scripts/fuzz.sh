#!/usr/bin/env bash
# Fuzzes every target in fuzz/ for a time budget each: ./scripts/fuzz.sh [seconds-per-target]
#
# Works on the stable toolchain: cargo-fuzz needs nightly-only flags (-Zsanitizer=...), which
# RUSTC_BOOTSTRAP=1 allows on stable. Only crates.io is contacted (to install cargo-fuzz and
# fetch crates). New interesting inputs go to fuzz/corpus/<target>/ (gitignored only under
# fuzz/target); a crash stops the run, is saved under fuzz/artifacts/<target>/ and makes the
# script exit non-zero. FUZZ_SANITIZER=none|address (default address, falling back to none
# when the ASan build fails) and FUZZ_TARGETS="a b" override the defaults.
# Exit status: 0 no crash, 1 a crash, 2 cargo-fuzz could not be installed or built.
set -euo pipefail

seconds="${1:-30}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root/fuzz"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz from crates.io" >&2
    cargo install --locked cargo-fuzz || exit 2
fi

sanitizer="${FUZZ_SANITIZER:-address}"
if ! cargo fuzz build --sanitizer "$sanitizer" >&2; then
    if [[ "$sanitizer" == none ]]; then
        exit 2
    fi
    echo "build with --sanitizer $sanitizer failed; retrying with --sanitizer none" >&2
    sanitizer=none
    cargo fuzz build --sanitizer none >&2 || exit 2
fi

read -r -a targets <<<"${FUZZ_TARGETS:-$(cargo fuzz list | tr '\n' ' ')}"
failed=()
for target in "${targets[@]}"; do
    echo "=== $target: ${seconds}s (sanitizer $sanitizer)" >&2
    mkdir -p "corpus/$target"
    if ! cargo fuzz run --sanitizer "$sanitizer" "$target" "corpus/$target" -- \
        -max_total_time="$seconds" -print_final_stats=1; then
        failed+=("$target")
    fi
done

if ((${#failed[@]})); then
    echo "fuzz: crash in: ${failed[*]} (inputs under fuzz/artifacts/)" >&2
    exit 1
fi
echo "fuzz: no crash in ${#targets[@]} targets, ${seconds}s each" >&2
