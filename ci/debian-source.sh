#!/usr/bin/env bash
# The base kernel is Debian's linux-source-6.12 (patches/base.toml). apt is
# the first of the sources `cargo xtask build-kernel` takes the checksummed
# .deb from; this makes apt able to serve it where it can. On Debian
# bookworm apt already knows it and this does nothing. On Ubuntu (GitHub's
# runners) it adds Debian's bookworm-security archive with its keyring,
# pinned at priority 1 so that no Ubuntu package is ever replaced by a
# Debian one: only an explicit `package=version` request uses it.
# When apt does not (or no longer) serve the pinned version, this says so
# and succeeds: the build then uses the next sources of the pin (Debian's
# snapshot archive, the local cache).
set -euo pipefail
cd "$(dirname "$0")/.."
pkg=$(sed -n 's/^package = "\(.*\)"$/\1/p' patches/base.toml)
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' patches/base.toml)
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo=sudo; fi

# madison writes one line per version; `grep -q` would stop reading at the
# first match and, under pipefail, a SIGPIPE in apt-cache would turn a hit
# into a miss. Read the whole list first.
known() {
    local versions
    versions=$(apt-cache madison "$pkg" 2>/dev/null || true)
    grep -qF " $version " <<<"$versions"
}

if known; then
    echo "debian-source: apt knows $pkg $version"
    exit 0
fi
$sudo apt-get update -q >/dev/null
if known; then
    echo "debian-source: apt knows $pkg $version"
    exit 0
fi
if ! grep -q '^ID=ubuntu' /etc/os-release; then
    echo "debian-source: apt does not know $pkg $version and this is not Ubuntu"
    echo "  apt knows: $(apt-cache madison "$pkg" 2>/dev/null | awk -F' [|] ' '{print $2}' | tr '\n' ' ')"
    echo "  build-kernel will take the .deb from the other sources in patches/base.toml"
    exit 0
fi
echo "debian-source: adding Debian bookworm-security for $pkg"
$sudo apt-get install -y -q debian-archive-keyring >/dev/null
$sudo tee /etc/apt/sources.list.d/debian-bookworm-security.sources >/dev/null <<'SOURCES'
Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
$sudo tee /etc/apt/preferences.d/debian-bookworm-security >/dev/null <<'PIN'
Package: *
Pin: origin deb.debian.org
Pin-Priority: 1
PIN
$sudo apt-get update -q >/dev/null
if ! known; then
    echo "debian-source: Debian's archive does not serve $pkg $version (any more);"
    echo "  build-kernel will take the .deb from the other sources in patches/base.toml"
    exit 0
fi
echo "debian-source: apt knows $pkg $version"
