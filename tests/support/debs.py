"""Build real .deb files for tests, valid ones with dpkg-deb and broken ones by hand.

Why: the library must ingest real packages and reject malformed ones. Valid debs come
from `dpkg-deb --build` (reproducible: fixed mtimes and SOURCE_DATE_EPOCH); invalid
ones, which dpkg-deb refuses to make, are assembled here as an ar archive holding
debian-binary, control.tar.gz and data.tar.gz.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import random
import tarfile
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from ._proc import CommandError, run

SOURCE_DATE_EPOCH = 1_700_000_000
MAINTAINER = "debops-ci tests <tests@example.invalid>"
_LARGE_PAYLOAD = 256 * 1024  # above this, xz is slow on random bytes: use gzip


def strip_epoch(version: str) -> str:
    return version.split(":", 1)[1] if ":" in version else version


def deb_filename(name: str, version: str, arch: str) -> str:
    """Debian's file name convention: `<name>_<version-without-epoch>_<arch>.deb`."""
    return f"{name}_{strip_epoch(version)}_{arch}.deb"


def seeded_bytes(size: int, seed: str) -> bytes:
    """`size` incompressible but reproducible bytes."""
    return random.Random(seed).randbytes(size)


def _control_text(fields: list[tuple[str, str]]) -> str:
    return "".join(f"{k}: {v}\n" for k, v in fields)


def make_deb(
    out_dir: Path,
    name: str,
    version: str,
    arch: str = "amd64",
    depends: str | Sequence[str] | None = None,
    extra_fields: Mapping[str, str] | None = None,
    payload_size: int = 0,
    source: str | None = None,
    raw_control: str | None = None,
    *,
    files: Mapping[str, bytes] | None = None,
    compression: str = "auto",
    filename: str | None = None,
) -> Path:
    """Build `<out_dir>/<name>_<version-without-epoch>_<arch>.deb` and return its path.

    Contents: /usr/share/doc/<name>/hello, plus payload.bin of `payload_size` seeded
    random bytes, plus `files` (path relative to / -> bytes). `extra_fields` override or
    extend the generated control fields; `raw_control` replaces the control file
    verbatim (built with `dpkg-deb --nocheck`, or by hand if dpkg-deb still refuses).
    `compression`: xz, gzip, zstd, none, or auto (xz, gzip for big payloads).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / (filename or deb_filename(name, version, arch))
    data: dict[str, bytes] = {
        f"usr/share/doc/{name}/hello": f"hello from {name} {version} {arch}\n".encode()
    }
    if payload_size:
        data[f"usr/share/doc/{name}/payload.bin"] = seeded_bytes(
            payload_size, f"{name}/{version}/{arch}"
        )
    data.update({k.lstrip("/"): v for k, v in (files or {}).items()})

    if raw_control is None:
        control = _control_text(_fields(name, version, arch, depends, source, extra_fields, data))
    else:
        control = raw_control
    if compression == "auto":
        compression = "gzip" if payload_size > _LARGE_PAYLOAD else "xz"

    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".build-") as tmp:
        tree = Path(tmp) / "tree"
        _write_tree(tree, data, control)
        cmd = ["dpkg-deb", "--root-owner-group", f"-Z{compression}"]
        if raw_control is not None:
            cmd.append("--nocheck")
        cmd += ["--build", str(tree), str(out)]
        try:
            run(cmd, env={"SOURCE_DATE_EPOCH": str(SOURCE_DATE_EPOCH)})
        except CommandError:
            if raw_control is None:
                raise
            return make_raw_deb(out, raw_control, data)
    return out


def _fields(
    name: str,
    version: str,
    arch: str,
    depends: str | Sequence[str] | None,
    source: str | None,
    extra: Mapping[str, str] | None,
    data: Mapping[str, bytes],
) -> list[tuple[str, str]]:
    installed_kib = sum((len(b) + 1023) // 1024 for b in data.values()) or 1
    fields: list[tuple[str, str]] = [
        ("Package", name),
        ("Version", version),
        ("Architecture", arch),
        ("Maintainer", MAINTAINER),
        ("Installed-Size", str(installed_kib)),
    ]
    if source is not None:
        fields.append(("Source", source))
    if depends:
        deps = depends if isinstance(depends, str) else ", ".join(depends)
        fields.append(("Depends", deps))
    fields += [
        ("Section", "misc"),
        ("Priority", "optional"),
        ("Description", f"test package {name}\n Built by the debops-ci test harness."),
    ]
    for key, value in (extra or {}).items():
        idx = next((i for i, (k, _) in enumerate(fields) if k.lower() == key.lower()), None)
        if idx is None:
            fields.insert(len(fields) - 1, (key, value))  # keep Description last
        else:
            fields[idx] = (key, value)
    return fields


def _write_tree(tree: Path, data: Mapping[str, bytes], control: str) -> None:
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "DEBIAN" / "control").write_text(control)
    for rel, content in data.items():
        path = tree / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    # Fixed modes and mtimes: same inputs, same bytes, whatever the umask or clock.
    for path in [tree, *tree.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
        os.utime(path, (SOURCE_DATE_EPOCH, SOURCE_DATE_EPOCH))


# -- hand-made (possibly invalid) debs ------------------------------------------------


def _tar_gz(members: Mapping[str, bytes], mtime: int) -> bytes:
    """A gzip'd GNU tar with ./-prefixed names, parent dirs, root:root, fixed mtime."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        dirs: set[str] = set()
        entries: list[tuple[str, bytes | None]] = [(".", None)]
        for rel in sorted(members):
            parts = rel.strip("/").split("/")
            for i in range(1, len(parts)):
                d = "/".join(parts[:i])
                if d not in dirs:
                    dirs.add(d)
                    entries.append((d, None))
            entries.append(("/".join(parts), members[rel]))
        for rel, content in entries:
            info = tarfile.TarInfo("./" if rel == "." else f"./{rel}")
            info.mtime = mtime
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            if content is None:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
            else:
                info.mode = 0o644
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    return gzip.compress(buf.getvalue(), mtime=0)


def ar_archive(members: Sequence[tuple[str, bytes]], mtime: int = SOURCE_DATE_EPOCH) -> bytes:
    """A System V ar archive, the container format of a .deb."""
    out = [b"!<arch>\n"]
    for name, content in members:
        header = (f"{name:<16}{mtime:<12}{0:<6}{0:<6}{'100644':<8}{len(content):<10}`\n").encode()
        if len(header) != 60:
            raise ValueError(f"ar member name too long: {name!r}")
        out += [header, content, b"\n" if len(content) % 2 else b""]
    return b"".join(out)


def make_raw_deb(
    path: Path,
    control_text: str | bytes,
    data_files: Mapping[str, bytes] | None = None,
    *,
    control_files: Mapping[str, bytes] | None = None,
    debian_binary: bytes = b"2.0\n",
    mtime: int = SOURCE_DATE_EPOCH,
) -> Path:
    """Assemble a .deb by hand, with whatever control file the test needs.

    For malformed packages dpkg-deb will not build: no Package field, bad versions,
    newline injection, non-UTF-8 bytes. `control_files` adds more control members
    (md5sums, maintainer scripts); `debian_binary` can be made wrong too.
    """
    control = control_text.encode() if isinstance(control_text, str) else control_text
    ctl = {"control": control, **(control_files or {})}
    data = {k.lstrip("/"): v for k, v in (data_files or {}).items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        ar_archive(
            [
                ("debian-binary", debian_binary),
                ("control.tar.gz", _tar_gz(ctl, mtime)),
                ("data.tar.gz", _tar_gz(data, mtime)),
            ],
            mtime,
        )
    )
    return path


def truncate_file(path: Path, n: int) -> Path:
    """Cut a file to its first `n` bytes (negative `n`: drop the last `-n` bytes)."""
    size = path.stat().st_size
    keep = n if n >= 0 else max(size + n, 0)
    with path.open("r+b") as f:
        f.truncate(keep)
    return path


def make_not_a_deb(path: Path, content: bytes = b"this is not a Debian package\n") -> Path:
    """A file with a .deb-looking name that is not an ar archive at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def deb_fields(path: Path) -> dict[str, str]:
    """The control fields dpkg-deb reads from a .deb (multi-line values joined)."""
    text = run(["dpkg-deb", "--field", str(path)]).stdout.decode()
    return parse_stanza(text)


def parse_stanza(text: str) -> dict[str, str]:
    """Parse one deb822 stanza; continuation lines are kept with their newline."""
    fields: dict[str, str] = {}
    key: str | None = None
    for line in text.splitlines():
        if line[:1] in (" ", "\t") and key is not None:
            fields[key] += "\n" + line
        elif ":" in line:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return fields


def parse_stanzas(text: str) -> list[dict[str, str]]:
    """Parse a deb822 file (Packages, dpkg status) into its stanzas."""
    return [parse_stanza(block) for block in text.split("\n\n") if block.strip()]


# -- .deb containers member by member (dpkg's ar rules) ---------------------------------


def _tar(members: Mapping[str, bytes], mtime: int) -> bytes:
    """The uncompressed tar that `_tar_gz` compresses."""
    return gzip.decompress(_tar_gz(members, mtime))


def compress(data: bytes, compression: str) -> bytes:
    """`data` compressed the way dpkg-deb names it: none, gz, xz, zst, bz2 or lzma."""
    if compression == "none":
        return data
    if compression == "gz":
        return gzip.compress(data, mtime=0)
    if compression == "xz":
        return lzma.compress(data)
    if compression == "lzma":
        return lzma.compress(data, format=lzma.FORMAT_ALONE)
    if compression == "bz2":
        return bz2.compress(data)
    if compression == "zst":
        return run(["zstd", "-q", "-c"], input=data).stdout
    raise ValueError(f"unknown compression {compression!r}")


def member_name(base: str, compression: str) -> str:
    """`control.tar` + `.gz` etc. (nothing for `none`)."""
    return base if compression == "none" else f"{base}.{compression}"


def control_member(
    control_text: str = "Package: hello\nVersion: 1.0\nArchitecture: all\n",
    compression: str = "gz",
    extra: Mapping[str, bytes] | None = None,
) -> tuple[str, bytes]:
    """A `control.tar[.ext]` ar member holding `./control` (and `extra` members)."""
    tar = _tar({"control": control_text.encode(), **(extra or {})}, SOURCE_DATE_EPOCH)
    return member_name("control.tar", compression), compress(tar, compression)


def data_member(
    files: Mapping[str, bytes] | None = None, compression: str = "gz"
) -> tuple[str, bytes]:
    """A `data.tar[.ext]` ar member holding `files` (default: one doc file)."""
    content = files if files is not None else {"usr/share/doc/hello/hello": b"hello\n"}
    tar = _tar(content, SOURCE_DATE_EPOCH)
    return member_name("data.tar", compression), compress(tar, compression)


def write_members(path: Path, members: Sequence[tuple[str, bytes]]) -> Path:
    """A .deb made of exactly these ar members, in this order."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(ar_archive(members))
    return path


def dpkg_accepts(path: Path) -> tuple[bool, str]:
    """Whether dpkg would install this file: `dpkg-deb -I` reads the control part,
    `dpkg-deb --fsys-tarfile` the data part (what `dpkg -i` does), and dpkg's words."""
    messages = []
    for args in (["--info"], ["--fsys-tarfile"]):
        proc = run(["dpkg-deb", *args, str(path)], check=False)
        if proc.returncode != 0:
            messages.append(proc.stderr.decode(errors="replace").strip())
            return False, " / ".join(messages)
    return True, ""
