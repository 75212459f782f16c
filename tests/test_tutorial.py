"""docs/tutorial.md, run: every command of the page, in order, against real services.

The page walks one change from pull request to production. This test gives it the
machines it talks about — a SeaweedFS (the session's) with the buckets `acme-deb-pr`
and `acme-deb`, and four real sshd hosts (`test-1`, `prod-1`…`prod-3`, support.sshfleet)
named in `fleet/ssh_config` of the working directory — then runs the page's commands
(support.console_doc) and compares each output with the page, masked.

`UPDATE_TUTORIAL=1` rewrites the page's outputs from this run instead of comparing.
"""

from __future__ import annotations

import base64
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from support._proc import clean_env
from support.console_doc import (
    Mismatch,
    Session,
    Substitutions,
    mask,
    mismatch_report,
    parse,
    rewrite_outputs,
)
from support.seaweed import SeaweedServer, empty_and_delete_bucket
from support.sshfleet import SshFleet

pytestmark = pytest.mark.e2e

PAGE = Path(__file__).resolve().parents[1] / "docs" / "tutorial.md"
HOSTS = ("test-1", "prod-1", "prod-2", "prod-3")
BUCKETS = ("acme-deb-pr", "acme-deb")
# What the page shows for the two machine-specific values (see the page's table).
PAGE_WORKDIR = "/tmp/tutorial"
PAGE_ENDPOINT = "http://127.0.0.1:8333"
PAGE_ENDPOINT_SLUG = "127.0.0.1-8333-"


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A short path: the fleet's ssh control sockets live below it (108-byte limit)."""
    path = Path(tempfile.mkdtemp(prefix="tut-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def buckets(seaweed: SeaweedServer) -> Iterator[None]:
    client = seaweed.client()
    for name in BUCKETS:
        if name in {b["Name"] for b in client.list_buckets().get("Buckets", [])}:
            empty_and_delete_bucket(client, name)
        client.create_bucket(Bucket=name)
    yield
    if seaweed.running:
        for name in BUCKETS:
            empty_and_delete_bucket(client, name)


@pytest.fixture
def fleet(workdir: Path) -> Iterator[SshFleet]:
    """The four hosts, with no apt source yet: the page configures them."""
    fleet = SshFleet(workdir / "fleet", HOSTS)
    # start() wants a source; the page replaces it with its own before any apt run.
    fleet.start("http://127.0.0.1:9/none", "", suite="none")
    try:
        fleet.each(
            list(HOSTS),
            "rm -f /etc/apt/sources.list.d/deployer-test.list /etc/apt/keyrings/deployer-test.asc",
        )
        yield fleet
    finally:
        fleet.stop()


def _session_env(workdir: Path) -> dict[str, str]:
    """A clean user environment: no CI, AWS, signing or tool settings of the caller."""
    dropped = ("AWS_", "DEB_GPG", "DEBOPS_", "DEPLOYER_", "GITHUB_", "GIT_", "SSH_", "XDG_")
    env = {k: v for k, v in clean_env().items() if not k.startswith(dropped) and k != "CI"}
    home = workdir / "home"
    home.mkdir()
    env["HOME"] = str(home)
    env["NO_COLOR"] = "1"
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '/usr/bin:/bin')}"
    return env


@pytest.mark.usefixtures("buckets")
def test_tutorial_runs_as_written(seaweed: SeaweedServer, workdir: Path, fleet: SshFleet) -> None:
    page = PAGE.read_text()
    commands = parse(page)
    subs = Substitutions(
        {
            PAGE_WORKDIR: str(workdir),
            PAGE_ENDPOINT: seaweed.endpoint_url,
            # The endpoint as part of a name (the keyring file the setup lines suggest).
            PAGE_ENDPOINT_SLUG: f"127.0.0.1-{seaweed.s3_port}-",
        }
    )
    session = Session(workdir / ".session", workdir, _session_env(workdir))
    outputs: list[str] = []
    mismatches: list[Mismatch] = []
    update = os.environ.get("UPDATE_TUTORIAL") == "1"
    for command in commands:
        result = session.run(subs.to_run(command.text))
        output = subs.to_page(result.output)
        # In the page: its own text where only masked parts differ (no churn on update).
        same = mask(output) == mask(command.expected)
        outputs.append(command.expected if same else output)
        if result.returncode != 0:
            if update:  # keep what ran, so the failing output is on the page to read
                done = len(outputs)
                PAGE.write_text(rewrite_outputs(page, commands[:done], outputs))
            pytest.fail(
                f"{PAGE.name}:{command.line}: exit {result.returncode}\n$ {command.text}\n{output}"
            )
        if not same:
            mismatches.append(Mismatch(command, mask(output)))
    _assert_signing_key_never_printed(session, outputs)
    if update:
        PAGE.write_text(rewrite_outputs(page, commands, outputs))
        return
    if mismatches:
        pytest.fail(
            "the tutorial's outputs drifted (UPDATE_TUTORIAL=1 rewrites them):\n"
            + mismatch_report(PAGE.name, mismatches),
            pytrace=False,
        )


def _assert_signing_key_never_printed(session: Session, outputs: list[str]) -> None:
    """The secret the page's job holds (DEB_GPG_KEY_BASE64) is in no command's output."""
    secret = session.run('printf %s "$DEB_GPG_KEY_BASE64"').output
    assert len(secret) > 100, "the page no longer exports DEB_GPG_KEY_BASE64"
    armored = base64.b64decode(secret).decode()
    # The key body's lines (not the armor header, shared with any key).
    body = [line for line in armored.splitlines() if len(line) > 40]
    printed = "".join(outputs)
    assert secret not in printed
    assert not [line for line in body if line in printed], "private key lines were printed"
