#!/usr/bin/env bash
# Prove the README's commands on a fresh minimal Debian (issue 7 §1).
#
#   tools/check-fresh-install.sh [options] SUITE...      e.g. trixie bookworm
#
# For each suite: debootstrap --variant=minbase into /tmp/fresh, apt-get install git
# (and nothing else), copy this working tree in as a new git repository, then in
# separate copies of that root:
#   root   as root (no sudo): the main job as .ci/run (= the README) has it,
#          ./setup.sh && debops-ci ci ..., then ./setup.sh && ./setup.sh (the re-run
#          must be quick);
#   sudo   the same as a non-root user with passwordless sudo;
#   nosudo a non-root user without sudo: ./setup.sh must refuse in one line, exit 2, and
#          leave no .venv behind (not in the default --cases).
# and, with --tests, ./run-tests.sh --quick (plus any --e2e FILE) in the root copy.
# Each step runs in a login shell with a clean environment, as a new user would type it.
# Timings and results are printed as a table at the end; the exit code is non-zero if
# any step failed. Every mount is undone and every root removed on any exit (--keep
# leaves the roots, unmounted, for a look).
#
# Options:
#   --mirror URL   Debian mirror (default: http://deb.debian.org/debian)
#   --cases LIST   comma-separated, of root,sudo,nosudo (default: root,sudo)
#   --tests        also run ./run-tests.sh --quick in the root case
#   --e2e ARGS     also run ./run-tests.sh -x -q ARGS in the root case (repeatable), e.g.
#                  tests/test_archive_e2e.py, or "--maxfail=100 tests" for every test
#   --tree head    copy the last commit, with only the set-up files (setup.sh,
#                  run-tests.sh, .ci/run, pyproject.toml, tools/) taken from the working
#                  tree: for checking set-up while the rest of the tree is mid-edit
#                  (default: --tree worktree, the working tree as it is)
#   --base DIR     reuse DIR (a debootstrapped root with git, under /tmp/fresh) instead
#                  of debootstrapping; it is copied, never changed
#   --keep         keep the roots (unmounted) in /tmp/fresh for inspection
#   --logs DIR     where step logs go (default: a new directory under /tmp/fresh)
# Needs: root, debootstrap, network access to the mirror and to PyPI.
# shellcheck disable=SC2317  # functions run through step and trap look unreachable
set -euo pipefail
SRC="$(cd "$(dirname "$0")/.." && pwd)"
TOP=/tmp/fresh
MIRROR=http://deb.debian.org/debian
CASES=root,sudo
TESTS=0
E2E=()
BASE_DIR=""
TREE=worktree
KEEP=0
LOGS=""
SUITES=()

die() { echo "check-fresh-install: $*" >&2; exit 2; }

while [ $# -gt 0 ]; do
    case "$1" in
        --mirror) MIRROR="${2:?--mirror needs a URL}"; shift 2 ;;
        --cases) CASES="${2:?--cases needs a list}"; shift 2 ;;
        --tests) TESTS=1; shift ;;
        --e2e) E2E+=("${2:?--e2e needs a test file}"); shift 2 ;;
        --tree) TREE="${2:?--tree needs worktree or head}"; shift 2 ;;
        --base) BASE_DIR="${2:?--base needs a directory}"; shift 2 ;;
        --keep) KEEP=1; shift ;;
        --logs) LOGS="${2:?--logs needs a directory}"; shift 2 ;;
        -h|--help) sed -n '2,35p' "$0"; exit 0 ;;
        -*) die "unknown option $1 (see --help)" ;;
        *) SUITES+=("$1"); shift ;;
    esac
done
[ "${#SUITES[@]}" -gt 0 ] || die "name at least one suite, e.g. trixie bookworm (see --help)"
[ "$(id -u)" = 0 ] || die "must run as root (debootstrap, chroot and mounts need it)"
command -v debootstrap >/dev/null || die "debootstrap is not installed: apt-get install debootstrap"
CHROOT="$(command -v chroot)"
case "$TREE" in worktree|head) ;; *) die "--tree must be worktree or head, not $TREE" ;; esac
for c in ${CASES//,/ }; do
    case "$c" in root|sudo|nosudo) ;; *) die "unknown case $c in --cases (use root,sudo,nosudo)" ;; esac
done
if [ -n "$BASE_DIR" ]; then
    BASE_DIR="$(cd "$BASE_DIR" 2>/dev/null && pwd)" || die "--base: no such directory"
    case "$BASE_DIR/" in "$TOP"/?*) ;; *) die "--base must be under $TOP" ;; esac
    [ -x "$BASE_DIR/usr/bin/git" ] || die "--base $BASE_DIR has no git: not a base made by this script"
    [ "${#SUITES[@]}" = 1 ] || die "--base goes with exactly one suite"
fi
# The main job exactly as .ci/run (which is the README's) runs it.
MAIN_JOB="$(sed -n 's/^\(\.\/setup\.sh && debops-ci .*\) || exit$/\1/p' "$SRC/.ci/run")"
[ -n "$MAIN_JOB" ] || die "no './setup.sh && debops-ci ... || exit' line in .ci/run to check"
mkdir -p "$TOP"
[ -n "$LOGS" ] || LOGS="$(mktemp -d "$TOP/logs.XXXXXX")"
mkdir -p "$LOGS"

ROOTS=()     # every root this run made: unmounted and removed on exit
RESULTS=()   # "suite case step status seconds" lines for the table
FAILED=0
CHILD=""     # the step running now, if any

# -- mounts and clean-up ---------------------------------------------------------------
mount_root() {
    local r="$1"
    mount -t proc proc "$r/proc"
    mount --rbind /sys "$r/sys" && mount --make-rslave "$r/sys"
    mount --rbind /dev "$r/dev" && mount --make-rslave "$r/dev"
    # A private /run: the host's would let the chroot's maintainer scripts reach the
    # host's service manager.
    mount -t tmpfs -o mode=0755 tmpfs "$r/run"
}

mounts_under() { findmnt -rn -o TARGET | awk -v r="$1" 'index($0, r "/") == 1'; }

# Processes left running inside the chroot (gpg-agent, dirmngr): only ours, since only
# this script starts anything in a root it made.
kill_inside() {
    local r="$1" sig="$2" p
    for p in /proc/[0-9]*; do
        if [ "$(readlink "$p/root" 2>/dev/null)" = "$r" ]; then kill "-$sig" "${p#/proc/}" 2>/dev/null || true; fi
    done
}

unmount_root() {
    local r="$1" m
    kill_inside "$r" TERM
    sleep 0.5
    kill_inside "$r" KILL
    for m in run dev sys proc; do
        if mountpoint -q "$r/$m"; then umount -R "$r/$m" 2>/dev/null || true; fi
    done
    # A busy mount: detach it lazily rather than leave it behind.
    for m in $(mounts_under "$r" | sort -r); do umount -l "$m" 2>/dev/null || true; done
}

remove_root() {
    local r="$1"
    case "$r/" in "$TOP"/?*) ;; *) echo "check-fresh-install: refusing to remove $r" >&2; return ;; esac
    if [ -n "$(mounts_under "$r")" ]; then
        echo "check-fresh-install: $r still has mounts, not removing it:" >&2
        mounts_under "$r" >&2
        return
    fi
    rm -rf --one-file-system "$r"
}

# PID and every descendant, children first stopped from forking by stopping the parent.
kill_tree() {
    local pid="$1" c
    kill -STOP "$pid" 2>/dev/null || return 0
    for c in $(ps -o pid= --ppid "$pid"); do kill_tree "$c"; done
    kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
    local r
    # A step still running (interrupted): end it and what it started, by pid.
    if [ -n "$CHILD" ]; then kill_tree "$CHILD"; fi
    for r in "${ROOTS[@]}"; do unmount_root "$r"; done
    if [ "$KEEP" = 0 ]; then
        for r in "${ROOTS[@]}"; do remove_root "$r"; done
    fi
    local left=""
    for r in "${ROOTS[@]}"; do left+="$(mounts_under "$r")"; done
    if [ -n "$left" ]; then echo "check-fresh-install: mounts left behind:" >&2; echo "$left" >&2; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# -- steps -----------------------------------------------------------------------------
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# step SUITE CASE NAME LOG COMMAND...: run, time, record; a failure is recorded, not fatal.
step() {
    local suite="$1" case="$2" name="$3" log="$4" t0 rc=0 secs
    shift 4
    echo "== $suite/$case: $name (log: $log)"
    t0="$(now)"
    # In the background and waited for, so that INT/TERM reach the trap at once (bash
    # runs a trap only after a foreground child ends).
    "$@" >"$log" 2>&1 &
    CHILD=$!
    wait "$CHILD" || rc=$?
    CHILD=""
    secs="$(elapsed "$t0")"
    if [ "$rc" = 0 ]; then
        RESULTS+=("$suite $case $name ok $secs")
    else
        RESULTS+=("$suite $case $name FAILED($rc) $secs")
        FAILED=1
        echo "   failed (exit $rc) after ${secs}s; last lines of $log:"
        tail -n 15 "$log" | sed 's/^/   | /'
    fi
    return "$rc"
}

# In the chroot, as root, in a login shell with a clean environment (no host PATH, no
# pip settings of the host, no CI variables).
as_root() { env -i TERM=dumb HOME=/root "$CHROOT" "$1" /bin/bash -lc "$2"; }
# As the non-root user, in a login shell of its own.
as_user() { env -i TERM=dumb "$CHROOT" "$1" /usr/sbin/runuser -l dev -c "$2"; }

SETUP_FILES=(setup.sh run-tests.sh .ci/run pyproject.toml tools)

copy_tree() {
    local dest="$1"
    mkdir -p "$dest"
    if [ "$TREE" = head ]; then
        git -C "$SRC" archive HEAD | tar -C "$dest" -xf -
        (cd "$SRC" && tar -cf - --exclude=__pycache__ "${SETUP_FILES[@]}") | tar -C "$dest" -xf -
        return
    fi
    # The working tree as it is (uncommitted changes included), without ignored files.
    (cd "$SRC" && git ls-files -co --exclude-standard -z \
        | while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done \
        | tar --null -T - -cf -) | tar -C "$dest" -xf -
}

make_base() {
    local suite="$1" base="$2"
    debootstrap --variant=minbase "$suite" "$base" "$MIRROR" || return
    cp /etc/resolv.conf "$base/etc/resolv.conf"
    # As in the debian:NN containers: no services started by package installs.
    printf '#!/bin/sh\nexit 101\n' >"$base/usr/sbin/policy-rc.d"
    chmod 0755 "$base/usr/sbin/policy-rc.d"
    mount_root "$base"
    local rc=0
    as_root "$base" 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq git' || rc=$?
    unmount_root "$base"
    return "$rc"
}

# The CAs the host trusts beyond the root's own (a proxy that re-signs TLS, a local
# package mirror): without them pip cannot reach the index from the root where the host can.
trust_host_cas() {
    local r="$1"
    [ -s /etc/ssl/certs/ca-certificates.crt ] && [ -s "$r/etc/ssl/certs/ca-certificates.crt" ] || return 0
    python3 - /etc/ssl/certs/ca-certificates.crt "$r" <<'PY'
import pathlib, re, sys
pem = re.compile(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", re.S)
host = pem.findall(pathlib.Path(sys.argv[1]).read_text())
root = pathlib.Path(sys.argv[2])
have = set(pem.findall((root / "etc/ssl/certs/ca-certificates.crt").read_text()))
out = root / "usr/local/share/ca-certificates"
for i, cert in enumerate(c for c in host if c not in have):
    (out / f"host-{i}.crt").write_text(cert + "\n")
PY
    "$CHROOT" "$r" update-ca-certificates >/dev/null 2>&1
}

prepare_root() {
    local r="$1" dest="$2"
    copy_tree "$r$dest"
    as_root "$r" "cd $dest && git init -q -b main && git add -A &&
        git -c user.name=check -c user.email=check@localhost commit -qm snapshot"
}

prepare_sudo() {
    local r="$1" dest="$2"
    as_root "$r" 'DEBIAN_FRONTEND=noninteractive apt-get install -y -qq sudo >/dev/null &&
        useradd -m -s /bin/bash dev &&
        echo "dev ALL=(ALL) NOPASSWD: ALL" >/etc/sudoers.d/dev && chmod 0440 /etc/sudoers.d/dev' \
        || return
    copy_tree "$r$dest"
    "$CHROOT" "$r" chown -R dev:dev "$dest" || return
    as_user "$r" "cd $dest && git init -q -b main && git add -A &&
        git -c user.name=check -c user.email=check@localhost commit -qm snapshot"
}

prepare_nosudo() {
    local r="$1" dest="$2"
    as_root "$r" 'useradd -m -s /bin/bash dev' || return
    copy_tree "$r$dest"
    "$CHROOT" "$r" chown -R dev:dev "$dest"
}

# Without root or sudo, set-up cannot install the Debian packages: it must say so in
# one line, fail with exit 2, and change nothing.
check_refusal() {
    local r="$1" dest="$2" rc=0 err
    err="$(as_user "$r" "cd $dest && ./setup.sh" 2>&1 >/dev/null)" || rc=$?
    echo "exit $rc: $err"
    [ "$rc" = 2 ] && [ "$(printf '%s\n' "$err" | wc -l)" = 1 ] && [ ! -e "$r$dest/.venv" ]
}

run_case() {
    local suite="$1" case="$2" base="$3" r home rc=0
    r="$(mktemp -d "$TOP/$suite-$case.XXXXXX")"
    ROOTS+=("$r")
    chmod 0755 "$r"  # mktemp's 0700 would lock every user but root out of /
    cp -a "$base/." "$r/"
    trust_host_cas "$r"
    # A chroot shares the host's name; an installed machine finds its own in /etc/hosts
    # (sudo complains on every call otherwise).
    grep -qw "$(hostname)" "$r/etc/hosts" || printf '127.0.1.1\t%s\n' "$(hostname)" >>"$r/etc/hosts"
    mount_root "$r"
    if [ "$case" = root ]; then
        home=/root
        run() { as_root "$r" "$1"; }
    else
        home=/home/dev
        run() { as_user "$r" "$1"; }
    fi
    if ! step "$suite" "$case" prepare "$LOGS/$suite-$case-prepare.log" \
        "prepare_$case" "$r" "$home/debops-ci"; then
        unmount_root "$r"
        return
    fi
    if [ "$case" = nosudo ]; then
        step "$suite" "$case" refuses "$LOGS/$suite-$case-refuses.log" \
            check_refusal "$r" "$home/debops-ci" || true
        unmount_root "$r"
        return
    fi
    step "$suite" "$case" main-job "$LOGS/$suite-$case-main-job.log" \
        run "cd ~/debops-ci && $MAIN_JOB" || rc=1
    if [ "$rc" = 0 ]; then
        # What the main job printed must be what the README shows: a deb line naming an
        # archive whose signed root is there.
        local archive
        archive="$(sed -n 's|^deb \[signed-by=\(/.*\)/archive-key\.asc\] file://\1 unstable main$|\1|p' \
            "$LOGS/$suite-$case-main-job.log" | head -n 1)"
        if [ -z "$archive" ] || [ ! -s "$r$archive/dists/unstable/InRelease" ]; then
            RESULTS+=("$suite $case main-job-output FAILED -")
            FAILED=1
        fi
        step "$suite" "$case" re-run "$LOGS/$suite-$case-re-run.log" \
            run 'cd ~/debops-ci && ./setup.sh && ./setup.sh' || true
        # The installed command outside the tree, from a new shell.
        step "$suite" "$case" on-path "$LOGS/$suite-$case-on-path.log" \
            run 'cd / && command -v debops-ci && debops-ci --version' || true
    fi
    if [ "$case" = root ]; then
        if [ "$TESTS" = 1 ]; then
            step "$suite" "$case" run-tests-quick "$LOGS/$suite-$case-run-tests-quick.log" \
                run 'cd ~/debops-ci && ./run-tests.sh --quick' || true
        fi
        local f name
        for f in "${E2E[@]}"; do
            name="$(printf '%s' "${f##*/}" | tr -c 'A-Za-z0-9._=-' '_')"
            step "$suite" "$case" "e2e:$name" "$LOGS/$suite-$case-e2e-$name.log" \
                run "cd ~/debops-ci && ./run-tests.sh -x -q $f" || true
        done
    fi
    unmount_root "$r"
}

for suite in "${SUITES[@]}"; do
    if [ -n "$BASE_DIR" ]; then
        base="$BASE_DIR"
    else
        base="$(mktemp -d "$TOP/$suite-base.XXXXXX")"
        ROOTS+=("$base")
        chmod 0755 "$base"
        step "$suite" - debootstrap+git "$LOGS/$suite-debootstrap.log" make_base "$suite" "$base" || continue
    fi
    for c in ${CASES//,/ }; do run_case "$suite" "$c" "$base"; done
done

echo
printf '%-10s %-6s %-24s %-12s %8s\n' suite case step result seconds
for line in "${RESULTS[@]}"; do
    # shellcheck disable=SC2086
    printf '%-10s %-6s %-24s %-12s %8s\n' $line
done
echo "logs: $LOGS"
exit "$FAILED"
