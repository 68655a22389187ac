#!/usr/bin/env bash
# Run every selftest binary on the host's own (unpatched) kernel. Features it
# lacks must be reported as SKIP (exit 4), never as failures.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --release -p selftests --bins
status=0
# A binary is src/bin/NAME.rs or src/bin/NAME/main.rs.
for src in selftests/src/bin/*.rs selftests/src/bin/*/main.rs; do
    name=$(basename "${src%/main.rs}" .rs)
    out=$(./target/release/"$name" 2>&1) && rc=0 || rc=$?
    printf '%s\n' "$out" | sed "s/^/    /"
    case $rc in
        0|4) echo "host $name: exit $rc" ;;
        *) echo "host $name: FAILED (exit $rc) on host kernel $(uname -r)"; status=1 ;;
    esac
done
exit $status
