#!/usr/bin/env bash
# The pre-submission gate on patches/ (checkpatch --strict, mail format,
# kernel-doc, sparse + W=1 against the base, vmlinux for arm64 and i386),
# then the cover letters.
# BISECT=1 also builds every prefix of the series (about 30 minutes more
# on 2 CPUs), which the GitHub workflow does and .ci/run does not.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo xtask deps
args=()
if [ "${BISECT:-0}" = 1 ]; then
    args+=(--bisect)
fi
echo "== cargo xtask patches check ${args[*]}"
cargo xtask patches check "${args[@]}"
echo "== cargo xtask patches cover-letter"
cargo xtask patches cover-letter
