#!/usr/bin/env bash
# One-time set-up on a fresh Debian/Ubuntu machine: the Debian tools debops-ci drives,
# then debops-ci itself (editable) with its test dependencies.
set -euo pipefail
cd "$(dirname "$0")"
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends \
    git gnupg gpgv gpg-agent dpkg-dev debhelper fakeroot build-essential \
    apt-utils xz-utils ca-certificates curl aptly >/dev/null
python3 -m pip install -q --upgrade pip
python3 -m pip install -q -e '.[test]'
echo "debops-ci $(debops-ci --version | awk '{print $NF}') is ready"
