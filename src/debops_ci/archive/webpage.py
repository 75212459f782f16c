"""The archive's front door: its public key and an index.html saying how to use it."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from debops_ci.archive import layout
from debops_ci.archive.release import parse_release
from debops_ci.errors import DebopsError
from debops_ci.signing import unverified_clearsigned_content
from debops_ci.storage import NotFound

if TYPE_CHECKING:
    from debops_ci.archive.session import Archive


def suite_components(archive: Archive, suite: str) -> list[str]:
    """For display only, so the signature is not checked here."""
    try:
        signed = archive.store.get(layout.inrelease_key(suite)).data
        content = unverified_clearsigned_content(signed, suite)
        return parse_release(content, suite).components or ["main"]
    except (NotFound, DebopsError):
        return ["main"]


def render_index_html(base_url: str | None, suites: dict[str, list[str]]) -> str:
    url = base_url or "<URL of this archive>"
    keyring = "/etc/apt/keyrings/debops-ci-archive.asc"
    lines = [
        f"sudo curl -fsSL {url}/{layout.PUBLIC_KEY_ASC} -o {keyring}",
    ]
    for suite, components in sorted(suites.items()):
        lines.append(
            f'echo "deb [signed-by={keyring}] {url} {suite} {" ".join(components)}" | '
            f"sudo tee /etc/apt/sources.list.d/debops-ci-{suite}.list"
        )
    lines.append("sudo apt-get update")
    commands = html.escape("\n".join(lines))
    items = "\n".join(
        f"<li><code>{html.escape(s)}</code>: {html.escape(' '.join(c))}</li>"
        for s, c in sorted(suites.items())
    )
    return f"""<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>APT archive</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}
pre{{background:#f4f4f4;padding:1em;overflow-x:auto}}</style></head>
<body>
<h1>APT archive</h1>
<p>A signed Debian package archive published by debops-ci.</p>
<h2>Suites</h2>
<ul>
{items}
</ul>
<h2>Use it</h2>
<pre>{commands}</pre>
<p>Signing key: <a href="{layout.PUBLIC_KEY_ASC}">{layout.PUBLIC_KEY_ASC}</a>
(binary form: <a href="{layout.PUBLIC_KEY_GPG}">{layout.PUBLIC_KEY_GPG}</a>).</p>
</body>
</html>
"""


def publish_landing_files(archive: Archive) -> None:
    """Write the public key (armored and binary) and index.html at the archive root."""
    signer = archive.require_signer()
    store = archive.store
    store.put(layout.PUBLIC_KEY_ASC, signer.public_key_armored.encode())
    store.put(layout.PUBLIC_KEY_GPG, signer.export_public_binary())
    suites = {suite: suite_components(archive, suite) for suite in archive.suites()}
    page = render_index_html(store.public_url(), suites)
    store.put(layout.INDEX_HTML, page.encode())
