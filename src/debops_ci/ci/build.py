"""Build binary packages with `dpkg-buildpackage -b -us -uc`.

Each package is built in a copy of its directory, `<build_dir>/<source>/source`,
so the source tree is not littered and the files `dpkg-buildpackage` writes to
`..` land in `<build_dir>/<source>/`. What a build produced is read from the
`Files:` of its `.changes`. Each package has one log,
`<build_dir>/logs/<source>.log`.

Builds are reproducible: `SOURCE_DATE_EPOCH` is the date of the top changelog entry
of the copy (after any CI entry was added), with `LC_ALL=C.UTF-8` and `TZ=UTC`;
dpkg's default build flags map the build path away, so the same commit gives the same
bytes in any directory.

Build dependencies are checked with `dpkg-checkbuilddeps` before anything is built;
with `install_build_deps` they are first installed with
`apt-get build-dep <copy>` (one package at a time, apt holds a lock), after an
`apt-get update` when the machine has no package lists yet.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from debian.deb822 import Changes

from debops_ci.ci.git import git, is_git_repo
from debops_ci.ci.logger import CiLogger
from debops_ci.ci.providers import Provider
from debops_ci.ci.scan import PackageDir
from debops_ci.debian.changelog import read_top_entry
from debops_ci.debian.rules import strip_epoch
from debops_ci.errors import BuildError

__all__ = [
    "BuiltPackage",
    "PackageBuildError",
    "apt_build_dep",
    "build_env",
    "build_packages",
    "check_build_deps",
    "stage",
]

TAIL_LINES = 40
APT_LISTS = Path("/var/lib/apt/lists")

Prepare = Callable[[PackageDir, Path], None]


@dataclass(frozen=True)
class BuiltPackage:
    """One package built: what it produced and where its log is."""

    package: PackageDir
    version: str
    """The version built (the top entry of the copy's changelog)."""
    debs: tuple[Path, ...]
    """The `.deb` files listed in the `.changes` (debug symbol packages included)."""
    files: tuple[Path, ...]
    """Every file listed in the `.changes` (`.deb`, `.buildinfo`, ...)."""
    changes: Path
    log: Path
    source_dir: Path
    """The copy that was built."""


class PackageBuildError(BuildError):
    """A package failed to build; `tail` holds the end of its log for the user."""

    def __init__(
        self,
        message: str,
        *,
        package: str,
        log_path: Path | None,
        tail: str,
        failures: Sequence[PackageBuildError] = (),
    ) -> None:
        super().__init__(message)
        self.package = package
        self.log_path = log_path
        self.tail = tail
        self.failures: tuple[PackageBuildError, ...] = tuple(failures) or (self,)


def _tail(path: Path, lines: int = TAIL_LINES) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _log_path(build_dir: Path, pkg: PackageDir) -> Path:
    return build_dir / "logs" / f"{pkg.name}.log"


def _work_dir(build_dir: Path, pkg: PackageDir) -> Path:
    return build_dir / pkg.name


def _git_visible(src: Path) -> tuple[set[str], set[str]] | None:
    """In a git work tree, the files git shows under `src` (tracked, and untracked but
    not ignored) and their directories; None outside git."""
    if not is_git_repo(src):
        return None
    out = git(src, "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", ".")
    files = {p for p in out.split("\0") if p}
    dirs = {
        str(PurePosixPath(p).parents[i])
        for p in files
        for i in range(len(PurePosixPath(p).parents) - 1)
    }
    return files, dirs


def stage(pkg: PackageDir, build_dir: Path) -> Path:
    """Copy `pkg` to `<build_dir>/<source>/source` (fresh) and return the copy.

    In a git work tree only what git shows is copied (a virtualenv, a demo archive or
    any other ignored output stays behind); `.git` and the build directory itself
    (when it lies inside the package) are always left out; symbolic links are copied
    as links.
    """
    work = _work_dir(build_dir, pkg)
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    dest = work / "source"
    src = pkg.abs_path.resolve()
    skip = build_dir.resolve()
    visible = _git_visible(src)

    def ignore(directory: str, names: list[str]) -> set[str]:
        here = Path(directory).resolve()
        ignored = {n for n in names if n == ".git"}
        if skip.parent == here and skip.name in names:
            ignored.add(skip.name)
        if visible is not None:
            files, dirs = visible
            prefix = here.relative_to(src).as_posix()
            for name in names:
                rel = name if prefix == "." else f"{prefix}/{name}"
                if rel not in files and rel not in dirs:
                    ignored.add(name)
        return ignored

    shutil.copytree(src, dest, symlinks=True, ignore=ignore)
    return dest


def build_env(source_dir: Path, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a reproducible build of `source_dir`."""
    env = dict(os.environ if base is None else base)
    env["SOURCE_DATE_EPOCH"] = str(read_top_entry(source_dir / "debian" / "changelog").epoch)
    env["LC_ALL"] = "C.UTF-8"
    env["TZ"] = "UTC"
    env["DEBIAN_FRONTEND"] = "noninteractive"
    env.pop("LANGUAGE", None)
    return env


def _run_logged(cmd: Sequence[str], cwd: Path, env: Mapping[str, str], log: Path) -> int:
    with log.open("a", encoding="utf-8") as out:
        out.write(f"$ {' '.join(cmd)}\n")
        out.flush()
        try:
            proc = subprocess.run(
                list(cmd),
                cwd=cwd,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                check=False,
            )
        except FileNotFoundError:
            out.write(f"{cmd[0]}: command not found\n")
            return 127
        out.write(f"[exit status {proc.returncode}]\n")
        return proc.returncode


def check_build_deps(source_dir: Path, env: Mapping[str, str] | None = None) -> str | None:
    """What `dpkg-checkbuilddeps` finds missing in `source_dir`, or None when all is met."""
    try:
        proc = subprocess.run(
            ["dpkg-checkbuilddeps"],
            cwd=source_dir,
            env=dict(os.environ if env is None else env, LC_ALL="C.UTF-8"),
            capture_output=True,
            text=True,
            check=False,
        )
    except FileNotFoundError as exc:
        raise BuildError("dpkg-checkbuilddeps is missing: apt-get install dpkg-dev") from exc
    if proc.returncode == 0:
        return None
    found = []
    for line in (proc.stderr + proc.stdout).splitlines():
        for marker in ("Unmet build dependencies:", "Build conflicts:"):
            if marker in line:
                found.append(marker.lower().rstrip(":") + ": " + line.split(marker, 1)[1].strip())
    if found:
        return "; ".join(found)
    lines = proc.stderr.strip().splitlines()
    return lines[-1] if lines else f"dpkg-checkbuilddeps exit status {proc.returncode}"


def _apt_prefix() -> list[str]:
    if os.geteuid() == 0:
        return []
    if shutil.which("sudo"):
        return ["sudo", "-n", "--preserve-env=DEBIAN_FRONTEND"]
    raise BuildError("installing build dependencies needs root: run as root or install sudo")


def _apt_lists_empty() -> bool:
    try:
        return not any(
            p.name.endswith(("_Packages", ".lz4", ".gz", ".xz")) for p in APT_LISTS.iterdir()
        )
    except OSError:
        return True


def apt_build_dep(
    source_dir: Path, log: Path, env: Mapping[str, str] | None = None, *, update: bool | None = None
) -> None:
    """`apt-get build-dep` for `source_dir`, logging to `log`; BuildError on failure.

    `update`: run `apt-get update` first; by default only when there are no lists.
    """
    run_env = dict(os.environ if env is None else env, DEBIAN_FRONTEND="noninteractive")
    prefix = _apt_prefix()
    if update or (update is None and _apt_lists_empty()):
        _run_logged([*prefix, "apt-get", "update"], source_dir, run_env, log)
    cmd = [*prefix, "apt-get", "build-dep", "-y", "--no-install-recommends", str(source_dir)]
    if _run_logged(cmd, source_dir, run_env, log) != 0:
        raise BuildError(f"apt-get build-dep failed for {source_dir}: see {log}")


def _changes_file(work: Path, pkg_name: str, version: str) -> Path:
    plain = strip_epoch(version)
    found = sorted(work.glob(f"{pkg_name}_{plain}_*.changes"))
    if len(found) != 1:
        names = ", ".join(p.name for p in found) or "none"
        raise BuildError(f"{pkg_name}: expected one .changes in {work}, found {names}")
    return found[0]


def _outputs(changes: Path) -> tuple[Path, ...]:
    with changes.open(encoding="utf-8") as handle:
        parsed = Changes(handle)
    entries = parsed.get("Files") or []
    files = []
    for entry in entries:
        path = changes.parent / str(entry["name"])
        if not path.is_file():
            raise BuildError(f"{changes.name} lists {path.name} but the build did not produce it")
        files.append(path)
    return tuple(files)


def _build_one(
    pkg: PackageDir, source_dir: Path, build_dir: Path, env: Mapping[str, str]
) -> BuiltPackage:
    log = _log_path(build_dir, pkg)
    version = read_top_entry(source_dir / "debian" / "changelog").version
    cmd = ["dpkg-buildpackage", "-b", "-us", "-uc"]
    if _run_logged(cmd, source_dir, build_env(source_dir, env), log) != 0:
        raise PackageBuildError(
            f"{pkg.name} {version} ({pkg.rel}) failed to build: see {log}",
            package=pkg.name,
            log_path=log,
            tail=_tail(log),
        )
    changes = _changes_file(source_dir.parent, pkg.name, version)
    files = _outputs(changes)
    debs = tuple(f for f in files if f.suffix in (".deb", ".udeb"))
    if not debs:
        raise BuildError(f"{pkg.name} {version}: the build produced no .deb (see {log})")
    return BuiltPackage(
        package=pkg,
        version=version,
        debs=debs,
        files=files,
        changes=changes,
        log=log,
        source_dir=source_dir,
    )


def _combine(failures: Sequence[PackageBuildError]) -> PackageBuildError:
    if len(failures) == 1:
        return failures[0]
    names = ", ".join(f"{f.package} (log: {f.log_path})" for f in failures)
    tail = "\n".join(f"==> {f.package}: {f.log_path} <==\n{f.tail}" for f in failures)
    return PackageBuildError(
        f"{len(failures)} packages failed to build: {names}",
        package=failures[0].package,
        log_path=failures[0].log_path,
        tail=tail,
        failures=failures,
    )


def build_packages(
    pkgs: Sequence[PackageDir],
    build_dir: Path,
    *,
    jobs: int = 1,
    install_build_deps: bool = False,
    log: Callable[[str], None] = print,
    prepare: Prepare | None = None,
    env: Mapping[str, str] | None = None,
) -> list[BuiltPackage]:
    """Build every package of `pkgs`, `jobs` at a time; results in `pkgs`' order.

    `prepare(pkg, copy)` runs on each fresh copy before its build (the pipeline adds
    the CI changelog entry there). Build dependencies are checked for all packages
    before any build starts. A failure raises `PackageBuildError` (its message
    names the package and the log, its `tail` holds the end of the log) once the
    builds already running have finished; builds not yet started are cancelled.
    """
    logger = CiLogger.wrap(log)
    names: dict[str, PackageDir] = {}
    for pkg in pkgs:
        if pkg.name in names:
            raise BuildError(
                f"two packages are named {pkg.name}: {names[pkg.name].rel} and {pkg.rel}: "
                "rename one in its debian/changelog"
            )
        names[pkg.name] = pkg
    if not pkgs:
        return []
    build_dir = build_dir.resolve()
    (build_dir / "logs").mkdir(parents=True, exist_ok=True)

    staged: list[tuple[PackageDir, Path]] = []
    for pkg in pkgs:
        _log_path(build_dir, pkg).write_text("", encoding="utf-8")
        copy = stage(pkg, build_dir)
        if prepare is not None:
            prepare(pkg, copy)
        staged.append((pkg, copy))

    unmet = []
    for pkg, copy in staged:
        if install_build_deps:
            logger(f"installing the build dependencies of {pkg.name}")
            try:
                apt_build_dep(copy, _log_path(build_dir, pkg), env)
            except BuildError as exc:
                log_path = _log_path(build_dir, pkg)
                raise PackageBuildError(
                    f"{pkg.name}: could not install its build dependencies: see {log_path}",
                    package=pkg.name,
                    log_path=log_path,
                    tail=_tail(log_path),
                ) from exc
        missing = check_build_deps(copy, env)
        if missing:
            unmet.append(f"{pkg.name} ({pkg.rel}): {missing}")
    if unmet:
        hint = (
            "the apt install failed to satisfy them"
            if install_build_deps
            else "install them (apt-get build-dep <package dir>) or pass --install-build-deps"
        )
        raise BuildError(f"missing build dependencies: {'; '.join(unmet)}: {hint}")

    workers = max(1, jobs if jobs > 0 else (os.cpu_count() or 1))
    results: dict[str, BuiltPackage] = {}
    failures: list[PackageBuildError] = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures: dict[Future[BuiltPackage], PackageDir] = {}
        for pkg, copy in staged:
            logger(f"building {pkg.name} ({pkg.rel}) in {copy}, log {_log_path(build_dir, pkg)}")
            futures[pool.submit(_build_one, pkg, copy, build_dir, env or os.environ)] = pkg
        for future in as_completed(futures):
            pkg = futures[future]
            log_path = _log_path(build_dir, pkg)
            try:
                built = future.result()
            except CancelledError:
                continue
            except PackageBuildError as exc:
                failures.append(exc)
                for other in futures:
                    other.cancel()
                _show_log(logger, f"{pkg.name}: build FAILED", log_path)
                logger.error(str(exc))
                continue
            except BuildError as exc:
                failures.append(
                    PackageBuildError(
                        str(exc), package=pkg.name, log_path=log_path, tail=_tail(log_path)
                    )
                )
                logger.error(str(exc))
                continue
            results[pkg.name] = built
            _show_log(logger, f"{pkg.name} {built.version}: built", log_path)
            logger(f"built {pkg.name} {built.version}: {', '.join(d.name for d in built.debs)}")
    if failures:
        raise _combine(failures)
    return [results[pkg.name] for pkg in pkgs]


def _show_log(logger: CiLogger, title: str, log: Path) -> None:
    """The whole log in a folded group on CI; locally only its path."""
    if logger.provider is Provider.LOCAL:
        return
    with logger.group(title):
        try:
            logger(log.read_text(encoding="utf-8", errors="replace").rstrip("\n"))
        except OSError:
            logger(f"(cannot read {log})")
