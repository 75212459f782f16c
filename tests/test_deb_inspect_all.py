"""`inspect_all` over a process pool gives what `inspect_deb` gives, file by file (issue 11).

From `PROCESS_POOL_FROM` files on, the .debs are read by one forked worker per core,
in ranges; only small tuples come back. The result must be the serial one, in the same
order, with the same paths, and the first bad file in the given order is the one
reported.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support.debs import make_not_a_deb, make_raw_deb

from debops_ci.archive import inspect
from debops_ci.archive.inspect import PROCESS_POOL_FROM, inspect_all
from debops_ci.debian.package import inspect_deb
from debops_ci.errors import ConflictError, PackageError

N = PROCESS_POOL_FROM + 9


def _debs(directory: Path, n: int = N) -> list[Path]:
    return [
        make_raw_deb(
            directory / f"pkg{i:03d}_1.{i}_all.deb",
            f"Package: pkg{i:03d}\nVersion: 1.{i}\nArchitecture: all\n"
            f"Description: package {i}\n line two of {i}\n",
            {f"usr/share/doc/pkg{i:03d}/x": b"x" * i},
        )
        for i in range(n)
    ]


@pytest.fixture(autouse=True)
def _two_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    # The pool path needs more than one core: say there are two, whatever the machine.
    monkeypatch.setattr(inspect, "_usable_cores", lambda: 2)


def test_the_pool_gives_the_serial_result_in_order(tmp_path: Path) -> None:
    paths = _debs(tmp_path)
    assert inspect_all(paths) == [inspect_deb(p) for p in paths]


def test_the_first_bad_file_in_order_is_reported(tmp_path: Path) -> None:
    paths = _debs(tmp_path)
    make_not_a_deb(paths[60])
    make_not_a_deb(paths[11])
    with pytest.raises(PackageError, match=r"^pkg011_1\.11_all\.deb: not a Debian package") as info:
        inspect_all(paths)
    assert info.value.exit_code == 8


def test_two_files_with_one_key_and_other_bytes_conflict(tmp_path: Path) -> None:
    paths = _debs(tmp_path)
    twin = make_raw_deb(
        tmp_path / "other" / "pkg005_1.5_all.deb",
        "Package: pkg005\nVersion: 1.5\nArchitecture: all\n",
    )
    with pytest.raises(ConflictError, match=r"pkg005 1\.5 all"):
        inspect_all([*paths, twin])


def test_the_same_file_twice_is_one_package(tmp_path: Path) -> None:
    paths = _debs(tmp_path)
    assert len(inspect_all([*paths, paths[3]])) == N
