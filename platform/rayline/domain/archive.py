"""Uploaded pipeline archives: checked member by member, and written by this module itself.

An archive is refused whole, with a message naming the bad member, when it holds an absolute
path, a ``..`` component, a name too long, a link leaving the folder, a member inside a link, a
device, FIFO or sparse file, too many members, or more bytes than allowed once unpacked.

Why not ``tarfile.extractall`` and its ``data`` filter: the filter trusts ``os.path.realpath``,
which gives up on paths longer than PATH_MAX (CVE-2025-4517, unfixed in the Pythons these
machines have), and extraction follows links already on disk. Here the tree of the members
accepted so far decides: nothing is written inside a link, and links are made last, only when
they resolve inside the folder in the final tree. The decompressed stream and tarfile's extended
headers are capped as they are read, so a small upload can't make the platform allocate or
decompress without bound.
"""

from __future__ import annotations

import gzip
import io
import os
import posixpath
import shutil
import tarfile
import tempfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from rayline.errors import InvalidInput, PayloadTooLarge

# The top folder inside a stored package zip: Ray unwraps a single top-level folder of a
# working_dir zip, so executions see the pipeline's files at the root of their directory.
PACKAGE_TOP = "pipeline"

_MAX_PATH, _MAX_NAME = 4096, 255  # bytes in a path, in one of its components (Linux's limits)
_MAX_HEADER = 64 * 1024  # one PAX or GNU long-name header: room for long names and attributes
_MAX_HEADER_RUN = 8  # extended headers in a row before a member; real archives use at most 4
_HEADER_ALLOWANCE = 16 * 1024  # per member: its headers and padding, beyond max_unpacked_bytes
_MAX_HOPS, _MAX_STEPS = 40, 1024  # links, and names, followed to resolve one link (Linux: 40 links)
_MAX_TOTAL_STEPS = 100_000  # names followed for all the links of one archive together
_CHUNK = 1024 * 1024
_EXTENDED = (
    tarfile.XHDTYPE,
    tarfile.XGLTYPE,
    tarfile.SOLARIS_XHDTYPE,
    tarfile.GNUTYPE_LONGNAME,
    tarfile.GNUTYPE_LONGLINK,
)
_LESS = "upload only what the pipeline needs (container_config['included_folders'])."


def _check_length(name: str, what: str) -> None:
    if len(os.fsencode(name)) > _MAX_PATH or any(len(os.fsencode(p)) > _MAX_NAME for p in name.split("/")):
        raise InvalidInput(
            f"Archive member {name[:200]!r} has a {what} longer than {_MAX_PATH} bytes or a "
            f"component longer than {_MAX_NAME}; shorten it."
        )


def _normalized(name: str) -> str:
    if name.startswith("/") or PurePosixPath(name).is_absolute() or (len(name) > 1 and name[1] == ":"):
        raise InvalidInput(f"Archive member {name!r} has an absolute path; paths must be relative to the folder.")
    _check_length(name, "path")
    parts = [p for p in PurePosixPath(name).parts if p not in ("", ".")]
    if ".." in parts:
        raise InvalidInput(f"Archive member {name!r} contains '..'; paths must stay inside the folder.")
    return "/".join(parts)


class _CappedStream:
    """The decompressed archive, produced as tarfile reads it: a gzip bomb is refused, never
    unpacked whole. Member sizes are counted from their headers; this caps what headers add."""

    def __init__(self, data: bytes, limit: int, max_unpacked_bytes: int) -> None:
        self._source = gzip.GzipFile(fileobj=io.BytesIO(data)) if data[:2] == b"\x1f\x8b" else io.BytesIO(data)
        self._left, self._max = limit, max_unpacked_bytes

    def read(self, size: int = -1) -> bytes:
        chunk = self._source.read(_CHUNK if size < 0 else min(size, _CHUNK))  # GzipFile.read(n): n bytes at most
        self._left -= len(chunk)
        if self._left < 0:
            raise PayloadTooLarge(f"The archive unpacks to more than {self._max} bytes; {_LESS}")
        return chunk


def _guarded_tarinfo() -> type[tarfile.TarInfo]:
    """A TarInfo class refusing, before tarfile reads their data, the headers that make it allocate
    without bound: a huge PAX or GNU long-name header, a long run of them, a sparse map."""
    run = 0  # extended headers in a row; one class per archive, so concurrent uploads don't mix

    class Guarded(tarfile.TarInfo):
        @classmethod
        def frombuf(cls, buf, encoding, errors):  # every 512-byte header, its extension still unread
            nonlocal run
            info = super().frombuf(buf, encoding, errors)
            if info.type == tarfile.GNUTYPE_SPARSE:
                raise InvalidInput(f"Archive member {info.name[:200]!r} is a sparse file; store it as a plain file.")
            run = run + 1 if info.type in _EXTENDED else 0
            if info.type in _EXTENDED and (info.size > _MAX_HEADER or run > _MAX_HEADER_RUN):
                raise InvalidInput(
                    f"Archive header {info.name[:200]!r} ({info.size} bytes) is over the limit of "
                    f"{_MAX_HEADER} bytes for extended headers (long names, attributes), or one of "
                    f"more than {_MAX_HEADER_RUN} in a row. Pack the folder with pack_folder."
                )
            return info

        # GNU sparse 1.0 (named by a PAX header) reads a map of any length once the next header is
        # read; this private hook is the only way in. A test builds such an archive.
        def _proc_gnusparse_10(self, next, pax_headers, tar):
            raise InvalidInput(f"Archive member {next.name[:200]!r} is a sparse file; store it as a plain file.")

    return Guarded


def _resolve(tree: dict[str, int | str | None], path: str, target: str, budget: list[int]) -> str:
    """Where the link at ``path``, to ``target``, ends, following the links of ``tree`` as the kernel would.

    Lexical, never ``os.path.realpath``: the tree is exactly what is on disk, so no length limit
    makes it stop early. A name missing from the tree is kept: the kernel would fail there.
    ``budget`` (steps left for the whole archive) bounds the time many long links can cost."""
    stack, parts, hops, steps = path.split("/")[:-1], target.split("/")[::-1], 0, 0
    while parts:
        part, steps = parts.pop(), steps + 1
        budget[0] -= 1
        if budget[0] < 0:
            raise InvalidInput("The archive's links take too long to follow; link to the files themselves.")
        if steps > _MAX_STEPS or hops > _MAX_HOPS:
            raise InvalidInput(
                f"Archive member {path[:200]!r} links to {target!r} through more than {_MAX_HOPS} "
                "links; link to the file itself."
            )
        if part == "..":
            if not stack:
                raise InvalidInput(f"Archive member {path[:200]!r} links to {target!r}, outside the pipeline folder.")
            stack.pop()
        elif part not in ("", "."):
            stack.append(part)
            entry = tree.get("/".join(stack))
            if isinstance(entry, str):  # a link: go on from its folder, with its target first
                stack.pop()
                parts.extend(entry.split("/")[::-1])
                hops += 1
    return "/".join(stack)


class _Unpacker:
    """Writes accepted members under ``dest`` and keeps the tree they form, to judge the next ones.

    Folders and files are written as they stream by, with O_EXCL and O_NOFOLLOW, under folders
    this class made, which are never links: no write follows a link. Links are made by ``finish``:
    a later member can change where an earlier link leads, so each is judged on the final tree.
    Content reached through a link counts again toward the limit: readers (the package zip) read it."""

    def __init__(self, dest: Path, max_unpacked_bytes: int, max_members: int) -> None:
        self.dest, self.max_bytes, self.max_members = os.fspath(dest), max_unpacked_bytes, max_members
        self.tree: dict[str, int | str | None] = {"": None}  # path -> None: folder, int: file size, str: link
        self.links: list[tuple[str, str]] = []  # (path, target), in the order of the archive
        self.members = self.folders = self.total = 0

    def _count(self, size: int) -> None:
        self.total += size
        if self.total > self.max_bytes:
            raise PayloadTooLarge(f"The archive unpacks to more than {self.max_bytes} bytes; {_LESS}")

    def _mkdir(self, path: str) -> None:
        self.folders += 1
        if self.folders > self.max_members:
            raise PayloadTooLarge(f"The archive makes more than {self.max_members} folders; {_LESS}")
        os.mkdir(os.path.join(self.dest, path), 0o755)
        self.tree[path] = None

    def _make_parents(self, path: str) -> None:
        parent, missing = path.rpartition("/")[0], []
        while parent not in self.tree:
            missing.append(parent)
            parent = parent.rpartition("/")[0]
        if isinstance(self.tree[parent], str):
            raise InvalidInput(
                f"Archive member {path[:200]!r} is inside {parent!r}, a link; nothing is written "
                "through a link. Store the folder itself."
            )
        if self.tree[parent] is not None:
            raise InvalidInput(f"Archive member {path[:200]!r} is inside {parent!r}, which is a file.")
        for folder in reversed(missing):
            self._mkdir(folder)

    def add(self, member: tarfile.TarInfo, tar: tarfile.TarFile) -> None:
        path = _normalized(member.name)
        if not path:
            return
        self.members += 1
        if self.members > self.max_members:
            raise PayloadTooLarge(f"The archive has more than {self.max_members} files; {_LESS}")
        if member.issparse() or not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
            raise InvalidInput(
                f"Archive member {path!r} is a device, FIFO, sparse or other special file; only "
                "files, folders and links inside the folder are accepted."
            )
        self._count(member.size)
        self._make_parents(path)
        if path in self.tree:
            if member.isdir() and self.tree[path] is None:
                return
            raise InvalidInput(f"Archive member {path[:200]!r} appears twice; each path may appear only once.")
        target = member.linkname
        if member.isdir():
            self._mkdir(path)
        elif member.issym():
            if target.startswith("/"):
                raise InvalidInput(f"Archive member {path!r} links to the absolute path {target!r}.")
            _check_length(target, "link target")
            self.tree[path] = target
            self.links.append((path, target))
        elif member.islnk():  # names a file earlier in the archive, by its member name
            name = posixpath.normpath(target)
            if name == ".." or name.startswith("../") or name.startswith("/"):
                raise InvalidInput(f"Archive member {path!r} links to {target!r}, outside the pipeline folder.")
            size = self.tree.get(name)
            if not isinstance(size, int):
                raise InvalidInput(
                    f"Archive member {path!r} is a hard link to {target!r}, which is not a file "
                    "earlier in the archive; store the file itself."
                )
            self._count(size)
            os.link(os.path.join(self.dest, name), os.path.join(self.dest, path), follow_symlinks=False)
            self.tree[path] = size
        else:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            source = tar.extractfile(member)
            assert source is not None  # None only for what is not a file, refused or handled above
            with (
                source as src,
                open(os.path.join(self.dest, path), "wb", opener=lambda p, _: os.open(p, flags, 0o600)) as out,
            ):
                while chunk := src.read(_CHUNK):
                    out.write(chunk)
                os.fchmod(out.fileno(), 0o755 if member.mode & 0o111 else 0o644)  # as the data filter: no setuid
            self.tree[path] = member.size

    def finish(self) -> None:
        budget = [_MAX_TOTAL_STEPS]
        for path, target in self.links:
            end = self.tree.get(_resolve(self.tree, path, target, budget))
            if isinstance(end, int):
                self._count(end)
        for path, target in self.links:
            os.symlink(target, os.path.join(self.dest, path))


def extract_archive(data: bytes, dest: Path, max_unpacked_bytes: int, max_members: int) -> None:
    """Check then extract a tar.gz (or a plain tar) into ``dest``, a new or empty folder.

    Links are kept when they resolve inside ``dest``. On any refusal ``dest`` is left empty."""
    dest.mkdir(parents=True, exist_ok=True)
    if any(dest.iterdir()):  # the tree must be all that is there, and all a refusal removes
        raise ValueError(f"extract_archive needs an empty folder; {dest} is not empty.")
    stream = _CappedStream(data, max_unpacked_bytes + (max_members + 1) * _HEADER_ALLOWANCE, max_unpacked_bytes)
    unpacker = _Unpacker(dest, max_unpacked_bytes, max_members)
    try:
        try:
            # typeshed's fileobj protocol asks for write, seek and tell in every mode; "r|" only reads.
            with tarfile.open(fileobj=stream, mode="r|", tarinfo=_guarded_tarinfo()) as tar:  # type: ignore[call-overload]
                for member in tar:
                    if sum(len(k) + len(v) for k, v in tar.pax_headers.items()) > _MAX_HEADER:  # globals add up
                        raise InvalidInput(
                            f"Archive member {member.name[:200]!r} follows global headers of more "
                            f"than {_MAX_HEADER} bytes. Pack the folder with pack_folder."
                        )
                    unpacker.add(member, tar)
            unpacker.finish()
        except (tarfile.TarError, EOFError, OSError, ValueError, zlib.error) as error:  # ValueError: a NUL in a name
            raise InvalidInput(f"step_file is not a readable tar.gz archive ({error}).") from error
    except BaseException:
        for child in dest.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
        raise


def read_text_member(root: Path, relative: str, field: str) -> str:
    path = resolve_inside(root, relative, field)
    if not path.is_file():
        raise InvalidInput(f"{field} {relative!r} is not a file in the uploaded folder.")
    return path.read_text(encoding="utf-8", errors="replace")


def resolve_inside(root: Path, relative: str, field: str) -> Path:
    if not relative or relative.startswith("/"):
        raise InvalidInput(f"{field} must be a path relative to the pipeline folder, not {relative!r}.")
    path = (root / relative).resolve()
    if not path.is_relative_to(root.resolve()):
        raise InvalidInput(f"{field} {relative!r} points outside the pipeline folder.")
    return path


_FIXED_DATE = (1980, 1, 1, 0, 0, 0)  # the zip format's first date: the same files give the same zip


def write_package_zip(src: Path, zip_path: Path) -> None:
    """Zip ``src`` under one top folder, atomically (a reader never sees half a zip), and
    reproducibly: no timestamps, so a package is named by its content (nodes cache by name)."""
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=zip_path.parent, suffix=".partial")
    os.close(fd)
    partial = Path(name)
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(zipfile.ZipInfo(f"{PACKAGE_TOP}/", _FIXED_DATE), "")
        for dirpath, dirnames, filenames in os.walk(src):
            dirnames.sort()
            for name in sorted(filenames):
                path = Path(dirpath) / name
                entry = zipfile.ZipInfo(f"{PACKAGE_TOP}/{path.relative_to(src).as_posix()}", _FIXED_DATE)
                entry.external_attr = (path.stat().st_mode & 0o777) << 16
                entry.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(entry, path.read_bytes())
    os.replace(partial, zip_path)
