#!/usr/bin/env bash
# Kernels travel between CI jobs as artifacts, not through the cache:
#   kernel-artifact.sh pack PROFILE    target/kernel/build-PROFILE ->
#                                      target/artifacts/kernel-PROFILE.tar.zst
#   kernel-artifact.sh unpack PROFILE  the reverse
# A tarball, because artifacts keep neither file modes nor mtimes, and both
# matter to make. Objects (*.o, *.a) are left out: the VM jobs boot the
# image, decode traces with vmlinux and install headers, and never relink.
# The build directory records what it was built from (incremental.rs), so
# `cargo xtask test` in the next job finds the kernel up to date.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:?usage: kernel-artifact.sh pack|unpack PROFILE}
profile=${2:?usage: kernel-artifact.sh pack|unpack PROFILE}
tarball=target/artifacts/kernel-$profile.tar.zst
case $mode in
    pack)
        mkdir -p target/artifacts
        tar --zstd -cf "$tarball" --exclude='*.o' --exclude='*.a' \
            -C target/kernel "build-$profile"
        ;;
    unpack)
        mkdir -p target/kernel
        tar --zstd -xf "$tarball" -C target/kernel
        ;;
    *)
        echo "kernel-artifact: unknown mode $mode (pack or unpack)" >&2
        exit 2
        ;;
esac
ls -l "$tarball"
