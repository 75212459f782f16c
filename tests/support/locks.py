"""A suite lock held by the test itself: a live lease that publishers wait for."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path


def hold_lock(root: Path, suite: str = "unstable") -> bytes:
    """Write a live lease held by this test process (so it is never taken over)."""
    boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    body = json.dumps(
        {
            "tool": "debops-ci",
            "owner": "the test",
            "host": socket.gethostname(),
            "boot_id": boot_id,
            "pid": os.getpid(),
            "run": "",
            "acquired": time.time(),
            "expires": time.time() + 3600,
            "token": "held-by-the-test",
        }
    ).encode()
    (root / "dists" / suite / ".debrepos3.lock").write_bytes(body)
    return body
