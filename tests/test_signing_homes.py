"""Private GnuPG homes: off persistent disk, and removed with their agents once their
run is dead (issue 8, §1.6).

SIGKILL cannot be caught: a killed publisher leaves its home (private key included) and
its gpg-agent. So each home records its owner, and every later run removes the homes
(and agents) of owners that are gone.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.cli import key_env, run_cli
from support.debs import make_deb
from support.gpgkeys import GpgKey
from support.locks import hold_lock
from support.secretscan import gnupg_homes_holding

from debops_ci import signing


def _agents_of(home: Path) -> list[int]:
    """Pids of live gpg-agent processes serving `home`."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and argv and argv[0].endswith(b"gpg-agent") and str(home).encode() in argv:
            pids.append(int(proc.name))
    return pids


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def runtime_dir(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private $XDG_RUNTIME_DIR (mode 0700), as systemd-logind makes one; a short
    path, as gpg-agent's sockets go in the home."""
    run = Path(tempfile.mkdtemp(prefix="rt-", dir="/tmp"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(run))
    yield run
    for home in run.glob("debops-gpg-*/g"):
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], check=False)
    shutil.rmtree(run)


def test_home_is_made_in_a_private_runtime_dir(runtime_dir: Path) -> None:
    with signing.private_gnupg_home() as home:
        assert home.parent.parent == runtime_dir
        assert home.stat().st_mode & 0o777 == 0o700
        owner = json.loads((home.parent / "owner").read_text())
        assert owner["pid"] == os.getpid()
    assert not home.parent.exists()


def test_a_runtime_dir_others_can_read_is_not_used(
    runtime_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime_dir.chmod(0o755)
    with signing.private_gnupg_home() as home:
        assert runtime_dir not in home.parents
        # /dev/shm (memory) when there is one, like here.
        assert home.parent.parent == Path("/dev/shm")


def test_homes_of_dead_runs_are_removed_with_their_agents(runtime_dir: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = runtime_dir / "debops-gpg-dead"
    (stale / "g" / "private-keys-v1.d").mkdir(parents=True, mode=0o700)
    stale.chmod(0o700)
    (stale / "owner").write_text(
        json.dumps({"pid": dead.pid, "start": "1", "pidns": os.readlink("/proc/self/ns/pid")})
    )
    subprocess.run(["gpgconf", "--homedir", str(stale / "g"), "--launch", "gpg-agent"], check=True)
    assert _agents_of(stale / "g")
    with signing.private_gnupg_home() as live:
        # A live run's home (this process's) is left alone by another run's sweep.
        assert signing.remove_dead_homes() == []
        assert live.exists()
    assert not stale.exists()
    _wait_for(lambda: not _agents_of(stale / "g"), "the dead run's agent to stop")


@pytest.mark.e2e
def test_a_sigkilled_publisher_leaves_nothing_after_the_next_run(
    runtime_dir: Path, signing_key: GpgKey, tmp_path: Path
) -> None:
    env = {**key_env(signing_key), "XDG_RUNTIME_DIR": str(runtime_dir)}
    root = tmp_path / "archive"
    first = run_cli(
        ["upload", "--archive", str(root), str(make_deb(tmp_path, "first", "1.0"))], env
    )
    assert first.returncode == 0, first.output
    hold_lock(root)
    log = tmp_path / "killed.log"
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DEB_GPG", "DEBOPS_"))}
    deb = make_deb(tmp_path / "b", "killed", "1.0")
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "debops_ci", "-v", "upload", "--archive", str(root), str(deb)],
            env={**base, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        # Waiting for the lock, it holds the imported key and its agent runs.
        _wait_for(lambda: b"waiting for the lock" in log.read_bytes(), "the lock wait")
        # Two homes: the signer's (private key) and the verifier's (public key only).
        homes = gnupg_homes_holding(signing_key, runtime_dir) | gnupg_homes_holding(signing_key)
        assert all(runtime_dir in h.parents for h in homes), f"home on disk: {homes}"
        (home,) = [h for h in homes if any((h / "g" / "private-keys-v1.d").glob("*.key"))]
        agents = _agents_of(home / "g")
        assert agents
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
    # SIGKILL: nothing could clean up.
    assert all(h.exists() for h in homes) and _agents_of(home / "g") == agents
    (root / "dists/unstable/.debrepos3.lock").unlink()
    later = run_cli(
        ["upload", "--archive", str(root), str(make_deb(tmp_path / "c", "later", "1.0"))], env
    )
    assert later.returncode == 0, later.output
    assert not any(h.exists() for h in homes)
    _wait_for(lambda: not _agents_of(home / "g"), "the killed run's agent to stop")
    assert not gnupg_homes_holding(signing_key, runtime_dir)
