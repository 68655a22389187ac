#!/usr/bin/env bash
# Peer regression suites on the unpatched base kernel and on the patched
# kernel (`cargo xtask regress`): liburing's own tests (Debian source
# package) and the kernel's mqueue selftests. Fails on any test that passes
# on the base but not with the patches.
#
# CI runs the quick selection (ci/regress.toml); REGRESS_ARGS overrides the
# arguments, e.g. REGRESS_ARGS="" for the full suites (long under TCG).
# Needs a deb-src entry for liburing: `cargo xtask deps` (ci/install-deps.sh)
# adds one as root.
set -euo pipefail
cd "$(dirname "$0")/.."
read -r -a args <<<"${REGRESS_ARGS---quick}"
echo "== cargo xtask regress ${args[*]}"
cargo xtask regress "${args[@]}"
