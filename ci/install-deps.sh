#!/usr/bin/env bash
# Install the host packages the workspace needs (`cargo xtask deps`). It
# must run as root: where the CI user is not root (GitHub's runners), the
# xtask binary is built first and run through sudo.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -eq 0 ]; then
    cargo xtask deps
else
    cargo build --quiet -p xtask
    sudo "$PWD/target/debug/xtask" deps
fi
