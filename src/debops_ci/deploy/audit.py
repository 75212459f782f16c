"""The audit trail: one JSON line per change, on the host and in a local file."""

from __future__ import annotations

import getpass
import json
import os
import socket
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = ["AuditEntry", "append_local", "operator"]


def operator() -> str:
    """Who is deploying: `user@machine` of the person or CI job running the deployer."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


@dataclass(frozen=True)
class AuditEntry:
    """One change on one host."""

    who: str
    when: str  # ISO 8601, UTC
    action: str  # deploy, promote, rollback, rollback-on-failure
    stage: str
    host: str
    package: str
    from_version: str | None
    to_version: str | None
    result: str  # ok, failed
    reason: str = ""

    def json_line(self) -> str:
        data = asdict(self)
        data["from"] = data.pop("from_version")
        data["to"] = data.pop("to_version")
        return json.dumps(data, sort_keys=True)


def append_local(path: Path, entry: AuditEntry) -> None:
    """Append to the local audit log (created 0600 in a 0700 directory)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a") as f:
        f.write(entry.json_line() + "\n")
