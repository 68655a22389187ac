#!/usr/bin/env bash
# Build the patched kernel and run every selftest in a VM, per profile.
# PROFILES defaults to "fast debug"; KVM is used when it really works.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo xtask deps
for profile in ${PROFILES:-fast debug}; do
    echo "== cargo xtask test --profile $profile"
    cargo xtask test --profile "$profile"
done
