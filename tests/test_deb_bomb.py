"""A decompression bomb in control.tar is refused in bounded memory (issue 8, §1.4).

The bomb: a .deb of a few MB whose control.tar holds a 1 GiB member of zeros. Either
the member is `./control` itself (refused from its tar header) or an `./md5sums` placed
before `./control` (refused when the decompressed control archive passes its cap). Each
inspection runs in a fresh interpreter that reports its peak RSS (`VmHWM`), so the
memory bound is the reader's, not the test process's.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from support._proc import run
from support.debs import ar_archive, data_member

pytestmark = pytest.mark.e2e

GIB = 1 << 30
MEMORY_BOUND = 200 << 20  # far below the 1 GiB member; an idle interpreter is ~40 MiB

_INSPECT = """
import json, sys
from pathlib import Path
from debops_ci.debian.package import inspect_deb
from debops_ci.errors import PackageError
try:
    inspect_deb(Path(sys.argv[1]))
    outcome = "accepted"
except PackageError as exc:
    outcome = str(exc)
# VmHWM: this process's own high-water mark. (ru_maxrss would also count what the
# parent had when it forked us: Linux keeps it across exec.)
with open("/proc/self/status") as status:
    peak = next(int(l.split()[1]) for l in status if l.startswith("VmHWM:")) * 1024
print(json.dumps({"outcome": outcome, "peak": peak}))
"""

# `./control` itself is refused from its header, whatever the compression; a member
# before it is skipped through each decompressor (the streaming and the cap differ).
BOMBS = ["control gz", "md5sums gz", "md5sums xz", "md5sums zst"]
_COMPRESSORS = {
    "gz": ["gzip", "-1", "-c"],
    "xz": ["xz", "-0", "-T2", "-c"],
    "zst": ["zstd", "-1", "-q", "-c"],
}


def _bomb(directory: Path, big_member: str, compression: str) -> Path:
    """control.tar.<compression> with a sparse 1 GiB `big_member` (tar reads it as zeros)."""
    tree = directory / f"tree-{big_member}-{compression}"
    tree.mkdir()
    (tree / "control").write_text("Package: bomb\nVersion: 1.0\nArchitecture: all\n")
    names = ["./control"]
    if big_member != "control":
        names.insert(0, f"./{big_member}")  # before ./control: it must be skipped to find it
    with open(tree / big_member, "r+b" if big_member == "control" else "wb") as fh:
        fh.truncate(GIB)
    tar = subprocess.Popen(
        ["tar", "-C", str(tree), "--format=gnu", "--no-recursion", "-cf", "-", *names],
        stdout=subprocess.PIPE,
    )
    out = directory / f"control-{big_member}.tar.{compression}"
    with open(out, "wb") as fh:
        subprocess.run(_COMPRESSORS[compression], stdin=tar.stdout, stdout=fh, check=True)
    assert tar.wait() == 0
    deb = directory / f"bomb-{big_member}-{compression}_1.0_all.deb"
    deb.write_bytes(
        ar_archive(
            [
                ("debian-binary", b"2.0\n"),
                (f"control.tar.{compression}", out.read_bytes()),
                data_member(),
            ]
        )
    )
    return deb


@pytest.fixture(scope="module")
def bombs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("bombs")
    return {case: _bomb(directory, *case.split()) for case in BOMBS}


@pytest.mark.parametrize("bomb", BOMBS)
def test_a_bomb_is_refused_in_bounded_memory(bombs: dict[str, Path], bomb: str) -> None:
    deb = bombs[bomb]
    assert deb.stat().st_size < 8 << 20  # a small file...
    proc = run([sys.executable, "-c", _INSPECT, str(deb)], timeout=120)
    report = json.loads(proc.stdout)
    assert report["outcome"] != "accepted"
    assert "limit" in report["outcome"], report["outcome"]
    assert report["peak"] < MEMORY_BOUND, f"peak RSS {report['peak'] >> 20} MiB"
