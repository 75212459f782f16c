"""A publisher process built on the library API, for crash, lock and concurrency tests.

Why: the CLI cannot be told to die at an exact storage operation, nor to use a short
lease. `publish_main` opens the archive the way `debops_ci.cli.common.open_archive`
does (store, Signer from DEB_GPG_KEY, Archive) and publishes, with test hooks on the
store observer, which runs at the START of every storage operation:

  --crash-at N      `os._exit(137)` when operation N starts (N-1 operations started;
                    in a parallel phase some may still be in flight and die with it);
                    past the last operation, it dies right after the publish returns
  --hold-after V:KEY#N  at the main thread's next operation after the N-th "V KEY",
                    print HOLDING and sleep until killed (threads keep running: the
                    lease renewer goes on renewing)
  --ops-out FILE    write the publish's operations (verb, key, detail) as JSON lines
  --verify-after    run the library's `verify` on the result (same code as the CLI's)

It prints one line `RESULT {json}` with what was published. Two ways to run it:

- as a script: `python tests/support/publisher.py publish --archive LOC [opts] DEB...`
  (`run_publisher`, `publisher_command`): a fresh interpreter, like a CI job;
- through a fork server (`ForkServer`): one warm interpreter with debops_ci and boto3
  imported forks a child per request. The child is a real process of its own (own pid,
  own store connections, own GnuPG home), so a crash is real, but it skips ~0.4 s of
  interpreter start and imports: the crash matrix runs hundreds of them. The server
  also runs the CLI itself (`debops_ci.cli.main.main(argv)`) in a child, for `verify`.

Only stdlib and debops_ci are imported on the publisher side, so the script needs no
test packages on sys.path.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict, Unpack

SCRIPT = Path(__file__).resolve()
CRASH_EXIT = 137

# -- the publisher process -------------------------------------------------------------


def _gnupg_homes() -> list[str]:
    from debops_ci import signing

    return sorted(str(home) for home in signing._live_homes)


def _say(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def publish_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="publisher.py publish")
    parser.add_argument("--archive", required=True)
    parser.add_argument("--suite", default="unstable")
    parser.add_argument("--component", default="main")
    parser.add_argument("--lease", type=float, default=60.0)
    parser.add_argument("--lock-timeout", type=float, default=900.0)
    parser.add_argument("--crash-at", type=int, default=0)
    parser.add_argument("--hold-after", default="")
    parser.add_argument("--ops-out")
    parser.add_argument("--verify-after", action="store_true")
    parser.add_argument("debs", nargs="+", type=Path)
    args = parser.parse_args(argv)

    from debops_ci.archive.publish import publish
    from debops_ci.archive.session import Archive
    from debops_ci.archive.settings import SuiteSettings
    from debops_ci.archive.verify import verify
    from debops_ci.errors import DebopsError
    from debops_ci.signing import Signer
    from debops_ci.storage import open_store

    count = 0
    guard = threading.Lock()
    ops: list[tuple[str, str, str]] = []
    seen: Counter[str] = Counter()
    armed = False

    def die(where: str) -> None:
        # Tell the test which GnuPG homes (and agents) we leave behind, then vanish.
        _say(f"CRASH {where} homes={json.dumps(_gnupg_homes())}")
        os._exit(CRASH_EXIT)

    def observer(verb: str, key: str, detail: str) -> None:
        nonlocal count, armed
        with guard:
            count += 1
            number = count
            ops.append((verb, key, detail))
            seen[f"{verb}:{key}"] += 1
            occurrence = f"{verb}:{key}#{seen[f'{verb}:{key}']}"
        if args.crash_at and number == args.crash_at:
            die(f"at operation {number}: {verb} {key}")
        if armed and threading.current_thread() is threading.main_thread():
            _say(f"HOLDING pid={os.getpid()} homes={json.dumps(_gnupg_homes())}")
            while True:
                time.sleep(3600)
        if args.hold_after and occurrence == args.hold_after:
            armed = True

    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    store = open_store(args.archive, endpoint_url=endpoint, observer=observer)
    settings = SuiteSettings(suite=args.suite, component=args.component)
    try:
        with (
            Signer.open(os.environ) as signer,
            Archive(
                store,
                signer=signer,
                log=_say,
                lock_timeout=args.lock_timeout,
                lease_seconds=args.lease,
            ) as archive,
        ):
            result = publish(archive, settings, args.debs)
            published = list(ops)
            if args.ops_out:
                Path(args.ops_out).write_text("".join(json.dumps(op) + "\n" for op in published))
            if args.crash_at and args.crash_at > len(published):
                die(f"after the publish returned ({len(published)} operations)")
            report = verify(archive) if args.verify_after else None
    except DebopsError as exc:
        _say(f"error: {exc}")
        return exc.exit_code
    summary = {
        "added": [" ".join(p.key) for p in result.added],
        "present": [" ".join(p.key) for p in result.already_present],
        "attempts": result.attempts,
        "operations": len(published),
        "verify_errors": [str(f) for f in report.errors] if report else None,
        "verify_warnings": [str(f) for f in report.warnings] if report else None,
    }
    print("RESULT " + json.dumps(summary), flush=True)
    return 0


def cli_main(argv: Sequence[str]) -> int:
    """The real `debops-ci` entry point, exit code returned instead of raised."""
    from debops_ci.cli.main import main

    try:
        main(list(argv))
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


# -- the fork server -------------------------------------------------------------------


def _child(request: dict[str, Any]) -> None:
    """In the forked child: run one request with stdout/stderr to files, then exit."""
    code = 70
    try:
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        for fd, name in ((1, "stdout"), (2, "stderr")):
            target = os.open(str(request[name]), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(target, fd)
            os.close(target)
        argv = [str(a) for a in request["argv"]]
        code = publish_main(argv) if request["kind"] == "publish" else cli_main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        # Never run the server's atexit handlers (they would remove its GnuPG homes).
        os._exit(code)


def serve_main() -> int:
    """Read JSON requests on stdin, fork a child for each, answer when it exits.

    Request: {"id", "kind": "publish"|"cli", "argv", "stdout", "stderr"} (file paths).
    Answer: {"id", "pid", "returncode"}. The server stays single-threaded, so forking
    it is safe; it ends when stdin closes and every child has been reaped.
    """
    import debops_ci.archive.publish
    import debops_ci.archive.verify
    import debops_ci.cli.main
    import debops_ci.storage.s3  # noqa: F401  (warm imports, inherited by children)

    pending: dict[int, object] = {}
    buffer = b""
    closed = False
    while not closed or pending:
        if not closed:
            ready, _, _ = select.select([0], [], [], 0.01)
            if ready:
                chunk = os.read(0, 1 << 16)
                closed = not chunk
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    request = json.loads(line)
                    sys.stdout.flush()
                    pid = os.fork()
                    if pid == 0:
                        _child(request)
                    pending[pid] = request["id"]
        else:
            time.sleep(0.01)
        while pending:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            answer = {
                "id": pending.pop(pid),
                "pid": pid,
                "returncode": os.waitstatus_to_exitcode(status),
            }
            sys.stdout.write(json.dumps(answer) + "\n")
            sys.stdout.flush()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["serve"]:
        return serve_main()
    if args[:1] == ["publish"]:
        return publish_main(args[1:])
    raise SystemExit("usage: publisher.py publish|serve ...")


# -- the test side ---------------------------------------------------------------------


@dataclass
class PublisherRun:
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    pid: int = 0

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    @property
    def result(self) -> dict[str, object]:
        for line in self.stdout.splitlines():
            if line.startswith("RESULT "):
                parsed: dict[str, object] = json.loads(line[len("RESULT ") :])
                return parsed
        raise AssertionError(f"publisher printed no RESULT:\n{self.output}")

    @property
    def left_homes(self) -> list[str]:
        return left_homes(self.stderr)


def left_homes(stderr: str) -> list[str]:
    """GnuPG homes a crashed or held publisher could not remove itself."""
    for line in stderr.splitlines():
        if " homes=" in line and line.startswith(("CRASH ", "HOLDING ")):
            homes: list[str] = json.loads(line.split(" homes=", 1)[1])
            return homes
    return []


class PublishOptions(TypedDict, total=False):
    suite: str
    lease: float
    lock_timeout: float
    crash_at: int
    hold_after: str
    ops_out: Path
    verify_after: bool


def publish_args(
    location: str, debs: Sequence[Path], **options: Unpack[PublishOptions]
) -> list[str]:
    args = ["--archive", location, "--suite", options.get("suite", "unstable")]
    if "lease" in options:
        args += ["--lease", str(options["lease"])]
    if "lock_timeout" in options:
        args += ["--lock-timeout", str(options["lock_timeout"])]
    if options.get("crash_at"):
        args += ["--crash-at", str(options["crash_at"])]
    if options.get("hold_after"):
        args += ["--hold-after", options["hold_after"]]
    if "ops_out" in options:
        args += ["--ops-out", str(options["ops_out"])]
    if options.get("verify_after"):
        args.append("--verify-after")
    return [*args, *map(str, debs)]


def publisher_command(
    location: str, debs: Sequence[Path], **options: Unpack[PublishOptions]
) -> list[str]:
    """The command line of a fresh-interpreter publisher."""
    return [sys.executable, str(SCRIPT), "publish", *publish_args(location, debs, **options)]


def publisher_env(env: Mapping[str, str]) -> dict[str, str]:
    """A clean base (no stray AWS/DEB_GPG/DEBOPS settings) plus `env`."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DEB_GPG", "DEBOPS_"))}
    base.update(env)
    return base


def run_publisher(
    location: str,
    debs: Sequence[Path],
    env: Mapping[str, str],
    **options: Unpack[PublishOptions],
) -> PublisherRun:
    """A fresh-interpreter publisher run to its end (or crash); cleans what a crash leaves."""
    started = time.monotonic()
    proc = subprocess.run(
        publisher_command(location, debs, **options),
        env=publisher_env(env),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    run = PublisherRun(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - started)
    remove_gnupg_homes(run.left_homes)
    return run


def remove_gnupg_homes(homes: Sequence[str]) -> None:
    """Stop the gpg-agent of each home a dead publisher left, and remove the home."""
    for home in homes:
        subprocess.run(
            ["gpgconf", "--homedir", home, "--kill", "all"],
            capture_output=True,
            timeout=30,
            check=False,
        )
        parent = Path(home).parent
        if parent.name.startswith("debops-gpg-") and parent.parent == Path("/tmp"):
            shutil.rmtree(parent, ignore_errors=True)


class ForkServer:
    """Client of `publisher.py serve`; thread-safe: many requests may run at once."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="debops-forkserver-"))
        self._proc = subprocess.Popen(
            [sys.executable, str(SCRIPT), "serve"],
            env=publisher_env(env),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._answers: dict[int, dict[str, int]] = {}
        self._events: dict[int, threading.Event] = {}
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            answer = json.loads(line)
            with self._lock:
                self._answers[answer["id"]] = answer
                event = self._events.get(answer["id"])
            if event is not None:
                event.set()

    def run(self, kind: str, argv: Sequence[str], timeout: float = 300) -> PublisherRun:
        with self._lock:
            rid = next(self._ids)
            event = self._events[rid] = threading.Event()
        out, err = self._dir / f"{rid}.out", self._dir / f"{rid}.err"
        request = {"id": rid, "kind": kind, "argv": list(argv), "stdout": str(out)}
        request["stderr"] = str(err)
        started = time.monotonic()
        with self._lock:
            assert self._proc.stdin is not None
            self._proc.stdin.write(json.dumps(request) + "\n")
            self._proc.stdin.flush()
        if not event.wait(timeout):
            raise TimeoutError(f"fork server request {kind} {list(argv)} timed out")
        seconds = time.monotonic() - started
        with self._lock:
            answer = self._answers.pop(rid)
            del self._events[rid]
        run = PublisherRun(
            answer["returncode"], out.read_text(), err.read_text(), seconds, answer["pid"]
        )
        out.unlink()
        err.unlink()
        remove_gnupg_homes(run.left_homes)
        return run

    def publish(
        self, location: str, debs: Sequence[Path], **options: Unpack[PublishOptions]
    ) -> PublisherRun:
        return self.run("publish", publish_args(location, debs, **options))

    def cli(self, *argv: str) -> PublisherRun:
        return self.run("cli", argv)

    def close(self) -> None:
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        try:
            self._proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout=10)
        self._reader.join(timeout=10)
        shutil.rmtree(self._dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
