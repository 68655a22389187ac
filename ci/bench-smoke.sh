#!/usr/bin/env bash
# A quick benchmark run in the VM, to see that the benchmarks still run.
# The newest report's markdown goes to the log and, on GitHub Actions, to
# the job summary. The numbers are not compared with anything: under TCG
# or on a shared runner they mean little.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo xtask deps
# Under TCG (no usable KVM) the run also counts guest instructions, which
# exercises the QEMU plugin end to end; on KVM it cannot.
insns=()
if [ ! -w /dev/kvm ] || ! grep -qwE 'vmx|svm' /proc/cpuinfo; then
    insns=(--insns)
fi
echo "== cargo xtask bench --quick ${insns[*]}"
cargo xtask bench --quick "${insns[@]}"
report=$(find target/bench -maxdepth 1 -name '*.md' -printf '%T@ %p\n' 2>/dev/null |
    sort -n | tail -n 1 | cut -d' ' -f2-)
if [ -z "$report" ]; then
    echo "bench-smoke: cargo xtask bench wrote no target/bench/*.md report" >&2
    exit 1
fi
echo "== $report"
cat "$report"
if [ ${#insns[@]} -gt 0 ] && ! grep -q "instructions/msg" "$report"; then
    echo "bench-smoke: --insns gave the report no instruction counts" >&2
    exit 1
fi
if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
    {
        echo "## Benchmark smoke run"
        echo
        cat "$report"
    } >>"$GITHUB_STEP_SUMMARY"
fi
