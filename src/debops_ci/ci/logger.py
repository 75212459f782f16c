"""Output for CI logs: collapsible groups, error annotations and the job summary.

GitHub Actions gets `::group::`/`::endgroup::`, `::error::` and a Markdown job
summary appended to `GITHUB_STEP_SUMMARY`; GitLab CI gets collapsed sections; any
other place gets plain headed blocks. Nothing else in the CI half knows about them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from debops_ci.ci.providers import Provider, detect_provider

__all__ = ["CiLogger"]


def _escape_command(text: str) -> str:
    """Escape a GitHub workflow command's data (one line, no stray `%`)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


class CiLogger:
    """Writes lines through `write`, grouped the way the CI provider folds them.

    A CiLogger is itself a `Callable[[str], None]`: calling it writes one message.
    """

    def __init__(
        self,
        write: Callable[[str], None] = print,
        *,
        provider: Provider = Provider.LOCAL,
        summary_path: Path | None = None,
    ) -> None:
        self._write = write
        self.provider = provider
        self.summary_path = summary_path
        self._sections = 0

    @classmethod
    def from_env(cls, env: Mapping[str, str], write: Callable[[str], None] = print) -> CiLogger:
        provider = detect_provider(env)
        summary = env.get("GITHUB_STEP_SUMMARY") if provider is Provider.GITHUB_ACTIONS else None
        return cls(write, provider=provider, summary_path=Path(summary) if summary else None)

    @classmethod
    def wrap(cls, log: Callable[[str], None]) -> CiLogger:
        """`log` itself when it is a CiLogger, else a plain CiLogger writing through it."""
        return log if isinstance(log, CiLogger) else cls(log)

    def __call__(self, message: str) -> None:
        self.info(message)

    def info(self, message: str) -> None:
        self._write(message)

    def error(self, message: str) -> None:
        """An error line; an annotation on GitHub Actions."""
        if self.provider is Provider.GITHUB_ACTIONS:
            self._write(f"::error::{_escape_command(message)}")
        else:
            self._write(f"error: {message}")

    @contextmanager
    def group(self, title: str) -> Iterator[None]:
        """Fold everything written inside into one collapsible block titled `title`."""
        title = title.replace("\n", " ")
        if self.provider is Provider.GITHUB_ACTIONS:
            self._write(f"::group::{title}")
            try:
                yield
            finally:
                self._write("::endgroup::")
        elif self.provider is Provider.GITLAB_CI:
            self._sections += 1
            name = f"debops_ci_{self._sections}"
            self._write(
                f"\x1b[0Ksection_start:{int(time.time())}:{name}[collapsed=true]\r\x1b[0K{title}"
            )
            try:
                yield
            finally:
                self._write(f"\x1b[0Ksection_end:{int(time.time())}:{name}\r\x1b[0K")
        else:
            self._write(f"── {title}")
            try:
                yield
            finally:
                self._write(f"── end of {title}")

    def summary(self, markdown: str) -> bool:
        """Append `markdown` to the job summary; False where there is none."""
        if self.summary_path is None:
            return False
        with self.summary_path.open("a", encoding="utf-8") as out:
            out.write(markdown if markdown.endswith("\n") else markdown + "\n")
        return True
