#!/usr/bin/env bash
# GitHub's Ubuntu runners have /dev/kvm, owned root:kvm 0660, and the job's
# user is not in group kvm: a udev rule opens it to everyone. Elsewhere
# this does nothing. The xtask decides by itself whether KVM really works
# (the device opens and the CPU has vmx/svm) and falls back to TCG.
set -euo pipefail
if [ "${GITHUB_ACTIONS:-}" != true ]; then
    echo "enable-kvm: not a GitHub Actions runner; nothing to do"
    exit 0
fi
if [ ! -e /dev/kvm ]; then
    echo "enable-kvm: this runner has no /dev/kvm; VMs will run under TCG"
    exit 0
fi
echo 'KERNEL=="kvm", GROUP="kvm", MODE="0666", OPTIONS+="static_node=kvm"' |
    sudo tee /etc/udev/rules.d/99-kvm-for-all.rules >/dev/null
sudo udevadm control --reload-rules
sudo udevadm trigger --name-match=kvm
ls -l /dev/kvm
