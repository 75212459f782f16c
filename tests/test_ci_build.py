"""Real dpkg-buildpackage builds: the examples, reproducibility, failures."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from test_ci_fixtures import clone, commit, copy_examples, git, init_repo, write_package

from debops_ci.ci.build import BuiltPackage, PackageBuildError, build_packages, stage
from debops_ci.ci.scan import find_packages
from debops_ci.errors import BuildError

EXPECTED_DEBS = {
    "hello": {"hello_1.0.0-1_amd64.deb", "hello-dbgsym_1.0.0-1_amd64.deb"},
    "hello-data": {"hello-data_1.0.0-1_all.deb"},
    "hello-tools": {"hello-tools_1.0.0-1_all.deb"},
}


def host_arch() -> str:
    return subprocess.run(
        ["dpkg", "--print-architecture"], capture_output=True, text=True, check=True
    ).stdout.strip()


def expected_debs(name: str) -> set[str]:
    return {deb.replace("_amd64.", f"_{host_arch()}.") for deb in EXPECTED_DEBS[name]}


def deb_contents(deb: Path) -> str:
    return subprocess.run(
        ["dpkg-deb", "--contents", str(deb)], capture_output=True, text=True, check=True
    ).stdout


@pytest.fixture(scope="module")
def two_builds(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[tuple[Path, list[BuiltPackage]], tuple[Path, list[BuiltPackage]]]:
    """The examples built from two fresh clones of one commit, at different paths."""
    tmp = tmp_path_factory.mktemp("repro")
    origin = init_repo(tmp / "origin")
    copy_examples(origin)
    commit(origin, "examples")
    results = []
    for where in (tmp / "one", tmp / "two" / "deeper" / "still"):
        where.mkdir(parents=True)
        work = clone(origin, where / "clone")
        lines: list[str] = []
        built = build_packages(find_packages(work), where / "build", jobs=2, log=lines.append)
        assert any(line.startswith("built hello ") for line in lines)
        results.append((work, built))
    return results[0], results[1]


def test_examples_build(
    two_builds: tuple[tuple[Path, list[BuiltPackage]], tuple[Path, list[BuiltPackage]]],
) -> None:
    (work, built), _ = two_builds
    assert [b.package.rel for b in built] == ["hello", "hello-data", "tools/hello-tools"]
    for b in built:
        assert {d.name for d in b.debs} == expected_debs(b.package.name)
        assert b.version == "1.0.0-1"
        assert b.changes.name.endswith(".changes")
        assert any(f.suffix == ".buildinfo" for f in b.files)
        assert b.log.is_file() and "dpkg-buildpackage -b -us -uc" in b.log.read_text()
        assert b.source_dir.parent == b.changes.parent
    by_name = {b.package.name: b for b in built}
    hello = next(d for d in by_name["hello"].debs if d.name.startswith("hello_"))
    assert "./usr/bin/hello" in deb_contents(hello)
    assert "./usr/bin/hello-tools" in deb_contents(by_name["hello-tools"].debs[0])
    assert "./usr/share/hello-data/greeting.txt" in deb_contents(by_name["hello-data"].debs[0])
    # The source tree is not littered: the builds ran in copies.
    assert git(work, "status", "--porcelain", "--ignored") == ""


def test_examples_are_reproducible_across_clones(
    two_builds: tuple[tuple[Path, list[BuiltPackage]], tuple[Path, list[BuiltPackage]]],
) -> None:
    (work1, built1), (work2, built2) = two_builds
    assert work1 != work2
    for b1, b2 in zip(built1, built2, strict=True):
        assert [d.name for d in b1.debs] == [d.name for d in b2.debs]
        for d1, d2 in zip(b1.debs, b2.debs, strict=True):
            assert d1 != d2
            assert d1.read_bytes() == d2.read_bytes(), f"{d1.name} differs between the clones"


def test_hello_runs(
    two_builds: tuple[tuple[Path, list[BuiltPackage]], tuple[Path, list[BuiltPackage]]],
    tmp_path: Path,
) -> None:
    (_, built), _ = two_builds
    hello = next(d for b in built for d in b.debs if d.name.startswith("hello_"))
    subprocess.run(["dpkg-deb", "-x", str(hello), str(tmp_path)], check=True)
    out = subprocess.run(
        [str(tmp_path / "usr" / "bin" / "hello"), "CI"], capture_output=True, text=True, check=True
    )
    assert out.stdout == "Hello, CI! (built by debops-ci)\n"


def test_failing_build_names_the_package_and_log(tmp_path: Path) -> None:
    rules = "\noverride_dh_auto_build:\n\techo 'the compiler exploded' >&2\n\texit 3\n"
    write_package(tmp_path / "src" / "broken", "broken", rules_extra=rules)
    write_package(tmp_path / "src" / "fine", "fine")
    pkgs = find_packages(tmp_path / "src")
    lines: list[str] = []
    with pytest.raises(PackageBuildError) as info:
        build_packages(pkgs, tmp_path / "build", jobs=2, log=lines.append)
    error = info.value
    log = tmp_path.resolve() / "build" / "logs" / "broken.log"
    assert str(error) == f"broken 1.0.0-1 (broken) failed to build: see {log}"
    assert isinstance(error, BuildError)
    assert error.package == "broken"
    assert error.log_path == log
    assert "the compiler exploded" in error.tail
    assert len(error.tail.splitlines()) <= 40
    assert any(line.startswith("error: broken 1.0.0-1") for line in lines)


def test_missing_build_dependency(tmp_path: Path) -> None:
    deps = "debhelper-compat (= 13), debops-ci-no-such-package (>= 2)"
    write_package(tmp_path / "src" / "needy", "needy", build_depends=deps)
    with pytest.raises(BuildError) as info:
        build_packages(find_packages(tmp_path / "src"), tmp_path / "build", log=lambda _: None)
    message = str(info.value)
    assert "missing build dependencies: needy (needy)" in message
    assert "debops-ci-no-such-package (>= 2)" in message
    assert "--install-build-deps" in message
    assert "\n" not in message
    # Nothing was built.
    assert "dpkg-buildpackage" not in (tmp_path / "build" / "logs" / "needy.log").read_text()


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="apt-get build-dep needs root")


@needs_root
def test_install_build_deps_that_cannot_be_installed(tmp_path: Path) -> None:
    deps = "debhelper-compat (= 13), debops-ci-no-such-package"
    write_package(tmp_path / "src" / "needy", "needy", build_depends=deps)
    with pytest.raises(PackageBuildError, match="could not install its build dependencies") as e:
        build_packages(
            find_packages(tmp_path / "src"),
            tmp_path / "build",
            install_build_deps=True,
            log=lambda _: None,
        )
    assert "apt-get build-dep" in (tmp_path / "build" / "logs" / "needy.log").read_text()
    assert e.value.tail


@needs_root
def test_install_build_deps_then_build(tmp_path: Path) -> None:
    write_package(tmp_path / "src" / "easy", "easy")
    built = build_packages(
        find_packages(tmp_path / "src"), tmp_path / "build", install_build_deps=True, log=print
    )
    assert [d.name for d in built[0].debs] == ["easy_1.0.0-1_all.deb"]
    assert "apt-get build-dep" in built[0].log.read_text()


def test_root_package_with_the_build_dir_inside(tmp_path: Path) -> None:
    repo = init_repo(tmp_path / "repo")
    write_package(repo, "rooted")
    write_package(repo / "sub", "subpkg")
    (repo / ".gitignore").write_text("/build/\n")
    commit(repo, "root package")
    (repo / "build").mkdir()
    (repo / "build" / "stale.txt").write_text("left over\n")
    root = next(p for p in find_packages(repo, exclude=[repo / "build"]) if p.rel == ".")
    copy = stage(root, repo / "build")
    assert (copy / "sub" / "debian" / "changelog").is_file()
    assert not (copy / "build").exists()
    assert not (copy / ".git").exists()
    built = build_packages([root], repo / "build", log=lambda _: None)
    assert [d.name for d in built[0].debs] == ["rooted_1.0.0-1_all.deb"]
    assert git(repo, "status", "--porcelain") == ""


def test_two_packages_with_one_name(tmp_path: Path) -> None:
    write_package(tmp_path / "one", "same")
    write_package(tmp_path / "two", "same")
    with pytest.raises(BuildError, match="two packages are named same: one and two"):
        build_packages(find_packages(tmp_path), tmp_path / "build", log=lambda _: None)


def test_prepare_hook_and_source_date_epoch(tmp_path: Path) -> None:
    write_package(tmp_path / "src" / "dated", "dated")

    def prepare(pkg: object, copy: Path) -> None:
        changelog = copy / "debian" / "changelog"
        text = changelog.read_text()
        entry = (
            "dated (1.0.0-1~pr9.2) unstable; urgency=medium\n\n  * CI.\n\n"
            " -- debops-ci tests <tests@debops-ci.invalid>  Fri, 01 Mar 2024 00:00:00 +0000\n\n"
        )
        changelog.write_text(entry + text)

    built = build_packages(
        find_packages(tmp_path / "src"), tmp_path / "build", prepare=prepare, log=lambda _: None
    )
    assert built[0].version == "1.0.0-1~pr9.2"
    assert [d.name for d in built[0].debs] == ["dated_1.0.0-1~pr9.2_all.deb"]
    listing = deb_contents(built[0].debs[0])
    assert "2024-03-01 00:00" in listing  # mtimes clamped to SOURCE_DATE_EPOCH
    # The original tree is untouched.
    assert "~pr9" not in (tmp_path / "src" / "dated" / "debian" / "changelog").read_text()
