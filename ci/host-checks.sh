#!/usr/bin/env bash
# Host-side checks that need no kernel: formatting, lints, unit tests.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "== cargo test (host unit tests)"
cargo test --workspace --quiet
