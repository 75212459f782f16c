"""Run the real `debops-ci` command and look at the archive it leaves behind."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from support.gpgkeys import GpgKey
from support.seaweed import S3Bucket

# Files that say nothing about the archive's content (the local store's mutex).
_IGNORED = {".debops-store.lock"}


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run_cli(
    args: Sequence[str],
    env: Mapping[str, str],
    *,
    cwd: Path | None = None,
    timeout: float = 300,
) -> CliResult:
    """`python -m debops_ci ARGS` with exactly `env` on top of a clean base."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DEB_GPG", "DEBOPS_"))}
    base.update(env)
    proc = subprocess.run(
        [sys.executable, "-m", "debops_ci", *args],
        env=base,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def key_env(key: GpgKey) -> dict[str, str]:
    env = {"DEB_GPG_KEY": key.private_armored}
    if key.passphrase:
        env["DEB_GPG_PASSPHRASE"] = key.passphrase
    return env


@dataclass
class ArchiveTarget:
    """Where a test publishes: a local directory or a SeaweedFS bucket."""

    kind: str
    location: str
    http_url: str
    env: dict[str, str] = field(default_factory=dict)
    root: Path | None = None
    bucket: S3Bucket | None = None

    def snapshot(self) -> dict[str, bytes]:
        """Every object of the archive and its bytes."""
        if self.root is not None:
            if not self.root.exists():
                return {}
            return {
                p.relative_to(self.root).as_posix(): p.read_bytes()
                for p in sorted(self.root.rglob("*"))
                if p.is_file() and p.name not in _IGNORED
            }
        assert self.bucket is not None
        client = self.bucket.client()
        found: dict[str, bytes] = {}
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket.bucket):
            for item in page.get("Contents", []):
                body = client.get_object(Bucket=self.bucket.bucket, Key=item["Key"])["Body"]
                found[item["Key"]] = body.read()
        return found

    def read(self, key: str) -> bytes:
        return self.snapshot()[key]

    def write(self, key: str, data: bytes) -> None:
        """Change an object behind debops-ci's back (tampering tests)."""
        if self.root is not None:
            path = self.root / key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            return
        assert self.bucket is not None
        self.bucket.client().put_object(Bucket=self.bucket.bucket, Key=key, Body=data)

    def delete(self, key: str) -> None:
        if self.root is not None:
            (self.root / key).unlink()
            return
        assert self.bucket is not None
        self.bucket.client().delete_object(Bucket=self.bucket.bucket, Key=key)
