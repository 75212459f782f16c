"""debops-ci as a Debian package, end to end: dogfood build, lintian, install on Debian 12/13.

A copy of the working tree becomes a fresh git repository; a pull request touching
`src/` is run through the real `debops-ci scan` and `debops-ci ci` (scan, version,
`dpkg-buildpackage -b -us -uc`, publish into a local archive signed by a throwaway
key). Then, in fresh minimal Debian 13 and 12 roots (debootstrap minbase, cached by
`support.debroot`), `apt-get install debops-ci` from that archive served on 127.0.0.1,
the three tools' `--version`, and a local publish with the installed `debops-ci`.

Needs root (chroot, bind mounts), deb.debian.org (the roots' own packages) and PyPI (the
build downloads its pinned wheels). Measurements are printed (`pytest -s` shows them).
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.cli import CliResult, run_cli
from support.debroot import mounted, remove_root, root_tarball, run_in_root, unpack_root
from support.debs import make_deb
from support.httpserve import serve_directory

from debops_ci import __version__
from debops_ci.cli.main import COMMANDS
from debops_ci.cli.manpages import render_all

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ("debops-ci", "deployer", "build-docs")
PR, BUILD = 7, 3
DEPENDS = ("python3", "gpg", "gpgv", "gpg-agent", "dpkg-dev", "git", "openssh-client")


@dataclass(frozen=True)
class Dogfood:
    """What the dogfood run left: the repository copy, its archive, the build outputs."""

    repo: Path
    archive: Path
    deb: Path
    changes: Path
    scan: CliResult
    ci: CliResult
    ci_seconds: float
    home: Path
    tmpdir: Path


def _git(repo: Path, *args: str) -> str:
    env = dict(
        os.environ,
        GIT_AUTHOR_NAME="t",
        GIT_AUTHOR_EMAIL="t@example.invalid",
        GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@example.invalid",
    )
    proc = subprocess.run(
        ["git", *args], cwd=repo, env=env, capture_output=True, text=True, check=True
    )
    return proc.stdout


def _copy_tree(dest: Path) -> None:
    """The working tree as git sees it (tracked + untracked, not ignored), uncommitted too."""
    listed = _git(ROOT, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    for rel in filter(None, listed.split("\0")):
        src = ROOT / rel
        if not src.is_file() and not src.is_symlink():
            continue  # deleted in the working tree
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target, follow_symlinks=False)


def _require_root() -> None:
    if os.geteuid() != 0:
        pytest.fail("this test needs root (chroot, bind mounts): run it as root")


@pytest.fixture(scope="module")
def dogfood(tmp_path_factory: pytest.TempPathFactory) -> Dogfood:
    _require_root()
    work = tmp_path_factory.mktemp("debpkg")
    repo = work / "repo"
    repo.mkdir()
    _copy_tree(repo)
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "the working tree")
    _git(repo, "checkout", "-q", "-b", "pr")
    errors = repo / "src/debops_ci/errors.py"
    errors.write_text(errors.read_text() + "\n# touched by the pull request of the test\n")
    _git(repo, "commit", "-q", "-am", "a change under src/")

    # The build must not write outside its build tree: HOME and TMPDIR stay empty.
    home, tmpdir = work / "home", work / "tmp"
    home.mkdir()
    tmpdir.mkdir()
    # A local run even when the test itself runs on a CI: --pr and --build say it all.
    ci_vars = ("CI", "GITHUB_ACTIONS", "GITLAB_CI", "CIRCLECI", "GITHUB_BASE_REF")
    env = {"HOME": str(home), "TMPDIR": str(tmpdir), **dict.fromkeys(ci_vars, "")}
    scan = run_cli(["scan", "--base", "main"], env, cwd=repo)
    archive = work / "archive"
    start = time.monotonic()
    ci = run_cli(
        [
            "ci",
            "--base",
            "main",
            "--pr",
            str(PR),
            "--build",
            str(BUILD),
            "--archive",
            str(archive),
            "--throwaway-key",
            "--build-dir",
            str(work / "build"),
        ],
        env,
        cwd=repo,
        timeout=1200,
    )
    seconds = time.monotonic() - start
    assert ci.returncode == 0, ci.output
    out = work / "build" / "debops-ci"
    (deb,) = out.glob("debops-ci_*_all.deb")
    (changes,) = out.glob("debops-ci_*.changes")
    print(f"\ndogfood ci: {seconds:.1f} s; {deb.name}: {deb.stat().st_size} bytes")
    return Dogfood(repo, archive, deb, changes, scan, ci, seconds, home, tmpdir)


def test_a_pull_request_touching_src_builds_and_publishes_debops_ci(dogfood: Dogfood) -> None:
    assert dogfood.scan.returncode == 0, dogfood.scan.output
    assert dogfood.scan.stdout == ".\n"  # the root package, and only it
    version = f"{__version__}-1~pr{PR}.{BUILD}"
    assert dogfood.deb.name == f"debops-ci_{version}_all.deb"
    assert "published 1 .deb" in dogfood.ci.stdout, dogfood.ci.output
    listed = run_cli(["list", "--archive", str(dogfood.archive)], {}, cwd=dogfood.repo)
    assert listed.returncode == 0, listed.output
    assert re.search(rf"debops-ci\s+{re.escape(version)}\s+all", listed.stdout), listed.stdout
    # Nothing written outside the build tree (pip's cache and temp files would be).
    assert sorted(p.name for p in dogfood.home.rglob("*")) == []
    assert sorted(p.name for p in dogfood.tmpdir.rglob("*")) == []


def _deb_field(deb: Path, field: str) -> str:
    proc = subprocess.run(
        ["dpkg-deb", "-f", str(deb), field], capture_output=True, text=True, check=True
    )
    return proc.stdout.strip()


def test_the_deb_ships_the_tools_their_man_pages_and_the_private_libraries(
    dogfood: Dogfood,
) -> None:
    listing = subprocess.run(
        ["dpkg-deb", "-c", str(dogfood.deb)], capture_output=True, text=True, check=True
    ).stdout
    paths = {line.split()[-1].removeprefix(".") for line in listing.splitlines()}
    for tool in TOOLS:
        assert f"/usr/bin/{tool}" in paths
        assert f"/usr/share/man/man1/{tool}.1.gz" in paths
    for module in ("debops_ci/cli/main.py", "boto3/__init__.py", "botocore/__init__.py"):
        assert f"/usr/lib/debops-ci/{module}" in paths
    assert not [p for p in paths if p.endswith((".pyc", ".pyo")) or "__pycache__" in p]
    assert not [p for p in paths if p.startswith("/usr/lib/debops-ci/bin/")]
    assert _deb_field(dogfood.deb, "Architecture") == "all"
    depends = {d.split()[0] for d in _deb_field(dogfood.deb, "Depends").split(", ")}
    assert set(DEPENDS) <= depends
    print(
        f"\n{dogfood.deb.name}: {dogfood.deb.stat().st_size} bytes, "
        f"Installed-Size {_deb_field(dogfood.deb, 'Installed-Size')} KiB"
    )


def test_the_man_pages_in_the_deb_are_those_of_the_cli(dogfood: Dogfood, tmp_path: Path) -> None:
    subprocess.run(["dpkg-deb", "-x", str(dogfood.deb), str(tmp_path)], check=True)
    man = tmp_path / "usr/share/man/man1"
    for page in render_all():
        shipped = gzip.decompress((man / f"{page.filename}.gz").read_bytes()).decode()
        assert shipped == page.text, f"{page.filename} differs from the CLI's definitions"
    debops = gzip.decompress((man / "debops-ci.1.gz").read_bytes()).decode()
    for command in COMMANDS:
        assert f".SS {command}\n" in debops
    # groff parses every page without a warning.
    for page in render_all():
        proc = subprocess.run(
            ["groff", "-man", "-Tutf8", "-ww", "-z"],
            input=page.text,
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 0 and proc.stderr == "", f"{page.filename}: {proc.stderr}"


def test_lintian_reports_no_errors(dogfood: Dogfood) -> None:
    proc = subprocess.run(
        ["lintian", "--info", str(dogfood.changes)],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    tags = [line for line in proc.stdout.splitlines() if re.match(r"^[EWIXPO]: ", line)]
    print("\nlintian " + dogfood.changes.name + ":\n" + ("\n".join(tags) or "(no tags)"))
    assert dogfood.deb.name in proc.stdout or proc.returncode == 0, proc.stdout + proc.stderr
    errors = [t for t in tags if t.startswith("E: ")]
    assert errors == [], proc.stdout
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.fixture(scope="session")
def root_tarballs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The pristine trixie and bookworm roots (cached; debootstrapped when not)."""
    _require_root()
    work = tmp_path_factory.mktemp("roots")
    suites = ("trixie", "bookworm")
    # Uncached, the two debootstraps wait on the network: run them side by side.
    with ThreadPoolExecutor(max_workers=len(suites)) as pool:
        tarballs = list(pool.map(lambda suite: root_tarball(suite, work), suites))
    return dict(zip(suites, tarballs, strict=True))


@pytest.fixture
def fresh_root(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    suite: str = request.param
    tarballs: dict[str, Path] = request.getfixturevalue("root_tarballs")
    root = unpack_root(tarballs[suite], tmp_path / "root")
    try:
        yield suite, root
    finally:
        remove_root(root)


def _ok(result_output: str, returncode: int, what: str) -> None:
    assert returncode == 0, f"{what} failed (exit {returncode}):\n{result_output[-4000:]}"


@pytest.mark.parametrize("fresh_root", ["trixie", "bookworm"], indirect=True)
def test_apt_installs_it_on_a_fresh_debian_and_it_publishes(
    dogfood: Dogfood, fresh_root: tuple[str, Path]
) -> None:
    suite, root = fresh_root
    keyring = root / "etc/apt/keyrings"
    keyring.mkdir(parents=True, exist_ok=True)
    shutil.copy(dogfood.archive / "archive-key.asc", keyring / "debops-ci.asc")
    shutil.copy("/etc/resolv.conf", root / "etc/resolv.conf")
    local = make_deb(root / "tmp", "hello-local", "1.0-1", arch="all")
    with serve_directory(dogfood.archive) as server, mounted(root):
        (root / "etc/apt/sources.list.d/debops-ci.list").write_text(
            f"deb [signed-by=/etc/apt/keyrings/debops-ci.asc] {server.url} unstable main\n"
        )
        update = run_in_root(root, ["apt-get", "update"])
        _ok(update.output, update.returncode, "apt-get update")
        install = run_in_root(
            root, ["apt-get", "install", "-y", "--no-install-recommends", "debops-ci"]
        )
        _ok(install.output, install.returncode, "apt-get install debops-ci")
        print(f"\n{suite}: apt-get install debops-ci: {install.seconds:.1f} s")
        assert any(p.endswith(".deb") and "debops-ci_" in p for p in server.paths())

        for tool in TOOLS:
            version = run_in_root(root, [tool, "--version"])
            _ok(version.output, version.returncode, f"{tool} --version")
            assert version.output.strip() == f"{tool}, version {__version__}", version.output
            print(f"{suite}: {tool} --version: {version.seconds:.2f} s")
        assert (root / "usr/share/man/man1/debops-ci.1.gz").is_file()

        inside = f"/tmp/{local.name}"
        upload = run_in_root(
            root, ["debops-ci", "upload", "--archive", "/tmp/a", "--throwaway-key", inside]
        )
        _ok(upload.output, upload.returncode, "debops-ci upload")
        assert "published hello-local 1.0-1 all" in upload.output, upload.output
        listed = run_in_root(root, ["debops-ci", "list", "--archive", "/tmp/a"])
        _ok(listed.output, listed.returncode, "debops-ci list")
        assert re.search(r"hello-local\s+1\.0-1\s+all", listed.output), listed.output
        # Running the tools wrote no bytecode beside the sources: purge leaves nothing.
        purge = run_in_root(root, ["apt-get", "purge", "-y", "debops-ci"])
        _ok(purge.output, purge.returncode, "apt-get purge debops-ci")
        assert not (root / "usr/lib/debops-ci").exists()
