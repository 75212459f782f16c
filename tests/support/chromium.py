"""Headless Chromium for tests of web pages: dump the DOM, screenshot, run JavaScript.

Why: a page is only tested when a real browser has rendered it. This drives Debian's
`/usr/bin/chromium` over the DevTools protocol on a pipe (`--remote-debugging-pipe`:
NUL-separated JSON on file descriptors 3 and 4), so no port is opened and no extra
Python package is needed. Each browser gets a fresh profile directory, removed on exit.

    with Chromium() as browser:
        page = browser.new_page(width=1200, height=900, dark=True)
        page.navigate(url)
        page.type_text("#filter", "hello")
        rows = page.evaluate("document.querySelectorAll('tr:not([hidden])').length")
        page.screenshot(tmp_path / "page.png")

One-shot helpers: `dump_dom(url)`, `screenshot(url, path)`, `evaluate(url, js)`.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

CHROMIUM = "/usr/bin/chromium"
# The flags the developers' guide requires: nothing reaches out to the network by itself.
BASE_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
# Safety nets against a hung browser, not assertions about speed.
_CALL_TIMEOUT = 60.0
_START_TIMEOUT = 60.0


class ChromiumError(RuntimeError):
    """The browser failed, a page did not load, or page JavaScript threw."""


def chromium_available() -> bool:
    return Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)


def _launch_args(user_data_dir: Path, extra: Sequence[str]) -> list[str]:
    return [CHROMIUM, *BASE_FLAGS, f"--user-data-dir={user_data_dir}", *extra]


def dump_dom(
    url: str, *, width: int = 1200, height: int = 900, extra_args: Sequence[str] = ()
) -> str:
    """The serialized DOM after the page loaded and its scripts ran (`--dump-dom`)."""
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        args = _launch_args(Path(profile), [f"--window-size={width},{height}", *extra_args])
        proc = subprocess.run(
            [*args, "--dump-dom", url],
            capture_output=True,
            text=True,
            timeout=_START_TIMEOUT * 2,
            check=False,
        )
    if proc.returncode != 0 or not proc.stdout.strip():
        raise ChromiumError(f"chromium --dump-dom {url} failed ({proc.returncode}): {proc.stderr}")
    return proc.stdout


def screenshot(
    url: str, path: Path, *, width: int = 1200, height: int = 900, dark: bool = False
) -> Path:
    """A full-page PNG of `url` at a `width`-pixel-wide viewport."""
    with Chromium() as browser:
        page = browser.new_page(width=width, height=height, dark=dark)
        page.navigate(url)
        return page.screenshot(path)


def evaluate(url: str, expression: str, *, dark: bool = False, width: int = 1200) -> Any:
    """Load `url`, then return the JSON value of a JavaScript expression on it."""
    with Chromium() as browser:
        page = browser.new_page(width=width, dark=dark)
        page.navigate(url)
        return page.evaluate(expression)


def _high_pipe() -> tuple[int, int]:
    """A pipe whose ends are above 9, so moving them onto 3 and 4 cannot clobber them."""
    ends = os.pipe()
    try:
        read, write = (fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in ends)
    finally:
        for fd in ends:
            os.close(fd)
    return read, write


class Chromium:
    """One headless browser process with a fresh profile; a context manager."""

    def __init__(self, *, extra_args: Sequence[str] = ()) -> None:
        self._extra = list(extra_args)
        self._proc: subprocess.Popen[bytes] | None = None
        self._profile: str | None = None
        self._to_browser = -1
        self._from_browser = -1
        self._buffer = b""
        self._next_id = 0
        self._events: list[dict[str, Any]] = []
        self._log: Path | None = None

    def __enter__(self) -> Chromium:
        if not chromium_available():
            raise ChromiumError(f"{CHROMIUM} not found: apt-get install chromium")
        self._profile = tempfile.mkdtemp(prefix="chromium-profile-")
        # Our ends stay here; the browser's ends become its fds 3 (commands in) and 4.
        cmd_read, cmd_write = _high_pipe()
        out_read, out_write = _high_pipe()
        args = _launch_args(Path(self._profile), ["--remote-debugging-pipe", *self._extra])
        # bash moves the pipe ends onto 3 and 4 (no preexec_fn: unsafe with threads; not
        # dash, whose `exec 3<&N` marks fd 3 close-on-exec).
        script = f'exec 3<&{cmd_read} 4>&{out_write} {cmd_read}<&- {out_write}>&-; exec "$@"'
        self._log = Path(self._profile) / "chromium.log"
        try:
            with self._log.open("wb") as log:
                self._proc = subprocess.Popen(
                    ["/bin/bash", "-c", script, "chromium", *args, "about:blank"],
                    pass_fds=(cmd_read, out_write),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                )
        finally:
            os.close(cmd_read)
            os.close(out_write)
        self._to_browser, self._from_browser = cmd_write, out_read
        try:
            self.call("Browser.getVersion", timeout=_START_TIMEOUT)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._proc is not None:
            if self._proc.poll() is None:
                with contextlib.suppress(ChromiumError):
                    self.call("Browser.close", timeout=10)
                try:
                    self._proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait(timeout=10)
            self._proc = None
        for fd in (self._to_browser, self._from_browser):
            if fd >= 0:
                os.close(fd)
        self._to_browser = self._from_browser = -1
        if self._profile is not None:
            shutil.rmtree(self._profile, ignore_errors=True)
            self._profile = None

    # -- the protocol ------------------------------------------------------------

    def call(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        session: str | None = None,
        timeout: float = _CALL_TIMEOUT,
    ) -> dict[str, Any]:
        """Send one DevTools command and return its result; raise on a protocol error."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        data = json.dumps(message).encode() + b"\0"
        while data:
            data = data[os.write(self._to_browser, data) :]
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read_message(deadline, method)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise ChromiumError(f"{method}: {reply['error'].get('message', reply)}")
                result: dict[str, Any] = reply.get("result", {})
                return result
            if "method" in reply:
                self._events.append(reply)

    def wait_event(
        self, method: str, *, session: str | None = None, timeout: float = _CALL_TIMEOUT
    ) -> dict[str, Any]:
        """The next event `method` (of `session`), waiting for it if not yet received."""
        deadline = time.monotonic() + timeout
        while True:
            for i, event in enumerate(self._events):
                if event["method"] == method and event.get("sessionId") == session:
                    del self._events[i]
                    params: dict[str, Any] = event.get("params", {})
                    return params
            reply = self._read_message(deadline, method)
            if "method" in reply:
                self._events.append(reply)

    def _read_message(self, deadline: float, waiting_for: str) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ChromiumError(f"chromium did not answer {waiting_for}")
            ready, _, _ = select.select([self._from_browser], [], [], left)
            if not ready:
                continue
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise ChromiumError(
                    f"chromium exited while waiting for {waiting_for}: {self._log_tail()}"
                )
            self._buffer += chunk
        raw, _, self._buffer = self._buffer.partition(b"\0")
        message: dict[str, Any] = json.loads(raw)
        return message

    def _log_tail(self) -> str:
        try:
            return self._log.read_text(errors="replace")[-2000:] if self._log else ""
        except OSError:
            return ""

    def new_page(self, *, width: int = 1200, height: int = 900, dark: bool = False) -> Page:
        """A new tab with a `width` x `height` viewport, light or dark color scheme."""
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        page = Page(self, session)
        page.call("Page.enable")
        page.call("Runtime.enable")
        page.set_viewport(width, height)
        page.set_dark(dark)
        return page


class Page:
    """One tab, attached through a flat DevTools session."""

    def __init__(self, browser: Chromium, session: str) -> None:
        self._browser = browser
        self.session = session

    def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return self._browser.call(method, params, session=self.session)

    def set_viewport(self, width: int, height: int) -> None:
        self.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )

    def set_dark(self, dark: bool) -> None:
        """Emulate `prefers-color-scheme: dark` (or light) for media queries."""
        scheme = "dark" if dark else "light"
        self.call(
            "Emulation.setEmulatedMedia",
            {"features": [{"name": "prefers-color-scheme", "value": scheme}]},
        )

    def disable_javascript(self) -> None:
        """Load later pages as a browser with JavaScript off would."""
        self.call("Emulation.setScriptExecutionDisabled", {"value": True})

    def navigate(self, url: str) -> None:
        """Load `url` and wait for its load event; raise if the navigation failed."""
        result = self.call("Page.navigate", {"url": url})
        if result.get("errorText"):
            raise ChromiumError(f"cannot load {url}: {result['errorText']}")
        self._browser.wait_event("Page.loadEventFired", session=self.session)

    def evaluate(self, expression: str) -> Any:
        """The JSON value of a JavaScript expression (promises are awaited)."""
        result = self.call(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise ChromiumError(f"JavaScript threw: {text}")
        return result.get("result", {}).get("value")

    def dom(self) -> str:
        """The serialized DOM as it is now."""
        return str(self.evaluate("document.documentElement.outerHTML"))

    def type_text(self, selector: str, text: str) -> None:
        """Focus the element and type `text` key by key, as a user would."""
        found = self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " if (!e) return false; e.focus(); return document.activeElement === e; })()"
        )
        if not found:
            raise ChromiumError(f"no focusable element {selector!r} on the page")
        for char in text:
            self.call("Input.dispatchKeyEvent", {"type": "keyDown", "key": char, "text": char})
            self.call("Input.dispatchKeyEvent", {"type": "keyUp", "key": char})

    def screenshot(self, path: Path) -> Path:
        """A PNG of the whole page (beyond the viewport), at the viewport's width."""
        metrics = self.call("Page.getLayoutMetrics")
        size = metrics.get("cssContentSize") or metrics["contentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
        shot = self.call(
            "Page.captureScreenshot",
            {"format": "png", "captureBeyondViewport": True, "clip": clip},
        )
        path.write_bytes(base64.b64decode(shot["data"]))
        return path
