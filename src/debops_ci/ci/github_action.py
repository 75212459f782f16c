"""The logic of the GitHub composite action (`action.yml`), testable in-process.

`.github/action/run.sh` calls it on both sides of the `debops-ci` command:

```sh
python -m debops_ci.ci.github_action argv FILE     # INPUT_* variables -> FILE (argv, NUL-separated)
debops-ci "${argv[@]}" | tee OUT
python -m debops_ci.ci.github_action outputs OUT RC  # OUT -> $GITHUB_OUTPUT, $GITHUB_STEP_SUMMARY
```

- `command_line` turns the action's inputs (`ActionInputs`, read from the
  `INPUT_*` variables the action's step sets) into the command's arguments, and
  refuses up front, with one clear line, to run a signing command without a signing
  key: on a pull request from a fork GitHub gives no secrets, and the command would
  otherwise build everything and only then fail at the first signature.
- `parse_output` reads what `ci`, `build` and `upload` print into an
  `ActionResult`; `github_output` and `summary_markdown` render it.

Why the output is parsed as text: the CLI has no machine-readable result for `ci`
yet; the lines read here are the ones the README documents.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from debops_ci.errors import DebopsError, UsageError

__all__ = [
    "MISSING_KEY_MODES",
    "SIGNING_COMMANDS",
    "ActionInputs",
    "ActionResult",
    "MissingSigningKey",
    "PublishedPackage",
    "command_line",
    "github_output",
    "main",
    "missing_key_summary",
    "parse_output",
    "summary_markdown",
]

# Commands that sign the archive, so need DEB_GPG_KEY / DEB_GPG_KEY_BASE64.
SIGNING_COMMANDS = frozenset({"ci", "upload", "publish", "remove", "delete_from_archive"})
# What to do when a signing command has no key: fail, or build without publishing.
MISSING_KEY_MODES = ("error", "build")
# Flags that make a signing command need no key from the environment.
_KEY_FREE_FLAGS = ("--gpg-key-fp", "--throwaway-key", "--dry-run")
_COMMAND = re.compile(r"^[a-z][a-z_-]*$")

_PUBLISHED = re.compile(r"^published \d+ \.deb files to (?P<suite>\S+): (?P<list>.+)$")
_BUILT = re.compile(r"^built \d+ \.deb files \(not published\): (?P<list>.+)$")
_DRY_RUN = re.compile(r"^dry run: would build (?P<list>.+)$")
_UPLOADED = re.compile(r"^published (?P<package>\S+) (?P<version>\S+) (?P<arch>\S+)$")
_BINARY = re.compile(r"^(?P<package>\S+) (?P<version>\S+) \((?P<arch>[^)]+)\)$")
_SOURCE = re.compile(r"^(?P<package>\S+) (?P<version>\S+)$")
_DEB_LINE = re.compile(r"^deb \[[^\]]*\] (?P<url>\S+) (?P<suite>\S+) \S+.*$")


class MissingSigningKey(UsageError):
    """A signing command with an empty key secret (typically a pull request from a fork)."""


@dataclass(frozen=True)
class ActionInputs:
    """The action's inputs; their defaults are written once, in `action.yml`."""

    command: str
    archive: str
    bucket_name: str
    endpoint_url: str
    distro: str
    origin: str
    args: str
    missing_key: str

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ActionInputs:
        def get(name: str) -> str:
            return env.get(f"INPUT_{name}", "").strip()

        return cls(
            command=get("COMMAND"),
            archive=get("ARCHIVE"),
            bucket_name=get("BUCKET_NAME"),
            endpoint_url=get("ENDPOINT_URL"),
            distro=get("DISTRO"),
            origin=get("ORIGIN"),
            args=env.get("INPUT_ARGS", ""),
            missing_key=get("MISSING_KEY"),
        )


@dataclass(frozen=True)
class PublishedPackage:
    """One binary package of the run (`architecture` is empty for a dry run's sources)."""

    package: str
    version: str
    architecture: str

    def as_dict(self) -> dict[str, str]:
        return {"package": self.package, "version": self.version, "architecture": self.architecture}


@dataclass(frozen=True)
class ActionResult:
    """What the action's outputs say about one run of the command."""

    status: str
    """`published`, `built`, `dry-run`, `nothing-to-build`, `done` or `failed`."""
    packages: tuple[PublishedPackage, ...] = ()
    debs: tuple[str, ...] = ()
    suite: str = ""
    archive_url: str = ""
    deb_line: str = ""
    apt_install: str = ""

    @property
    def key_url(self) -> str:
        """Where the archive's public key is (empty for a local archive or none)."""
        if not self.archive_url or self.archive_url.startswith("file:"):
            return ""
        return f"{self.archive_url.rstrip('/')}/archive-key.asc"


def command_line(inputs: ActionInputs, env: Mapping[str, str]) -> tuple[list[str], str | None]:
    """The `debops-ci` arguments for `inputs`, and a warning to show (or None).

    Raises `UsageError` for bad inputs and
    `MissingSigningKey` for a signing command without a key (unless
    `missing-key: build`, which runs `build` instead of `ci`, with a warning).
    """
    command = inputs.command
    if not _COMMAND.match(command):
        raise UsageError(
            f"action input command={command!r} is not a debops-ci command: use e.g. ci or build"
        )
    if inputs.missing_key not in MISSING_KEY_MODES:
        raise UsageError(
            f"action input missing-key={inputs.missing_key!r}: use "
            + " or ".join(MISSING_KEY_MODES)
        )
    if inputs.archive and inputs.bucket_name:
        raise UsageError("action inputs archive and bucket-name both given: set only one")
    try:
        extra = shlex.split(inputs.args)
    except ValueError as exc:
        raise UsageError(f"action input args cannot be split into words: {exc}") from exc

    warning = None
    if _needs_key(command, extra, env):
        if inputs.missing_key == "build" and command == "ci":
            command = "build"
            warning = (
                "no signing key (DEB_GPG_KEY and DEB_GPG_KEY_BASE64 are empty, as on a pull "
                "request from a fork): building without publishing"
            )
        else:
            raise MissingSigningKey(
                f"debops-ci {command} signs the archive but DEB_GPG_KEY and DEB_GPG_KEY_BASE64 "
                "are empty (a pull request from a fork gets no secrets): set the secret, or "
                "use missing-key: build to build without publishing"
            )

    argv = [command]
    for flag, value in (
        ("--archive", inputs.archive),
        ("--bucket-name", inputs.bucket_name),
        ("--endpoint-url", inputs.endpoint_url),
        ("--distro", inputs.distro),
        ("--origin", inputs.origin),
    ):
        if value:
            argv += [flag, value]
    return [*argv, *extra], warning


def _needs_key(command: str, extra: Sequence[str], env: Mapping[str, str]) -> bool:
    if command not in SIGNING_COMMANDS:
        return False
    if env.get("DEB_GPG_KEY", "").strip() or env.get("DEB_GPG_KEY_BASE64", "").strip():
        return False
    if env.get("DEBOPS_GPG_KEY_FP", "").strip():
        return False
    return not any(arg.split("=", 1)[0] in _KEY_FREE_FLAGS for arg in extra)


def parse_output(stdout: str, exit_code: int) -> ActionResult:
    """Read the lines `ci`, `build` or `upload` printed into a result."""
    status = "done"
    suite = deb_line = archive_url = apt_install = ""
    packages: list[PublishedPackage] = []
    debs: list[str] = []
    for line in stdout.splitlines():
        line = line.strip()
        if m := _PUBLISHED.match(line):
            status, suite = "published", m["suite"]
            packages = _binaries(m["list"])
        elif m := _BUILT.match(line):
            status = "built"
            packages = _binaries(m["list"])
        elif m := _DRY_RUN.match(line):
            status = "dry-run"
            packages = _sources(m["list"])
        elif line.startswith("nothing to build"):
            status = "nothing-to-build"
        elif m := _UPLOADED.match(line):
            status = "published"
            packages.append(PublishedPackage(m["package"], m["version"], m["arch"]))
        elif m := _DEB_LINE.match(line):
            deb_line, archive_url, suite = line, m["url"], suite or m["suite"]
        elif line.startswith("apt install "):
            apt_install = line
        elif line.startswith("/") and line.endswith(".deb"):
            debs.append(line)
    if exit_code != 0:
        status = "failed"
    return ActionResult(
        status=status,
        packages=tuple(packages),
        debs=tuple(debs),
        suite=suite,
        archive_url=archive_url,
        deb_line=deb_line,
        apt_install=apt_install,
    )


def _binaries(listing: str) -> list[PublishedPackage]:
    found = []
    for item in listing.split(", "):
        m = _BINARY.match(item)
        if m:
            found.append(PublishedPackage(m["package"], m["version"], m["arch"]))
    return found


def _sources(listing: str) -> list[PublishedPackage]:
    found = []
    for item in listing.split(", "):
        m = _SOURCE.match(item)
        if m:
            found.append(PublishedPackage(m["package"], m["version"], ""))
    return found


def github_output(result: ActionResult) -> str:
    """The text to append to `$GITHUB_OUTPUT`: one `name=value` per output."""
    values = {
        "status": result.status,
        "packages": json.dumps([p.as_dict() for p in result.packages], separators=(",", ":")),
        "debs": json.dumps(list(result.debs), separators=(",", ":")),
        "suite": result.suite,
        "archive-url": result.archive_url,
        "key-url": result.key_url,
        "deb-line": result.deb_line,
        "apt-install": result.apt_install,
    }
    lines = []
    for name, value in values.items():
        if "\n" in value or "\r" in value:  # never expected; the heredoc form keeps it safe
            delimiter = f"EOF_{uuid.uuid4().hex}"
            lines.append(f"{name}<<{delimiter}\n{value}\n{delimiter}")
        else:
            lines.append(f"{name}={value}")
    return "\n".join(lines) + "\n"


def summary_markdown(result: ActionResult) -> str:
    """What the action adds to the command's own job summary: how to use the archive."""
    if result.status != "published" or not result.deb_line:
        return ""
    # The keyring the deb line names (derived from the archive, so archives coexist).
    found = re.search(r"signed-by=(\S+?)[\]\s]", result.deb_line)
    keyring = found.group(1) if found else "/etc/apt/keyrings/debops-ci-archive.asc"
    name = keyring.rsplit("/", 1)[-1].removesuffix(".asc")
    lines = ["", "#### Use this archive", "", "```sh"]
    if result.key_url:
        lines += [f"sudo curl -fsSL {result.key_url} -o {keyring}"]
    lines += [
        f'echo "{result.deb_line}" | sudo tee /etc/apt/sources.list.d/{name}.list',
        "sudo apt-get update",
        "```",
        "",
    ]
    return "\n".join(lines)


def missing_key_summary(error: MissingSigningKey) -> str:
    """The job summary of a run refused for want of a signing key."""
    return f"### debops-ci: not run\n\n**Refused:** {error}\n"


def _append(path: str | None, text: str) -> None:
    if path and text:
        with Path(path).open("a", encoding="utf-8") as out:
            out.write(text)


def _escape(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """`argv FILE` or `outputs STDOUT_FILE EXIT_CODE`; returns the exit code."""
    env = os.environ if env is None else env
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        if len(args) == 2 and args[0] == "argv":
            try:
                words, warning = command_line(ActionInputs.from_env(env), env)
            except MissingSigningKey as exc:
                _append(env.get("GITHUB_STEP_SUMMARY"), missing_key_summary(exc))
                raise
            if warning:
                print(f"::warning::{_escape(warning)}")
            Path(args[1]).write_bytes(b"".join(w.encode() + b"\0" for w in words))
            return 0
        if len(args) == 3 and args[0] == "outputs" and args[2].lstrip("-").isdecimal():
            stdout = Path(args[1]).read_text(encoding="utf-8", errors="replace")
            result = parse_output(stdout, int(args[2]))
            _append(env.get("GITHUB_OUTPUT"), github_output(result))
            _append(env.get("GITHUB_STEP_SUMMARY"), summary_markdown(result))
            return 0
        raise UsageError("usage: github_action argv FILE | outputs STDOUT_FILE EXIT_CODE")
    except DebopsError as exc:
        print(f"::error::{_escape(str(exc))}")
        return exc.exit_code
    except OSError as exc:
        print(f"::error::{_escape(f'debops-ci action: {exc}')}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
