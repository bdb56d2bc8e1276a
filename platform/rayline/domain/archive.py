"""Uploaded pipeline archives: checked member by member before anything touches the disk.

An archive is refused whole, with a message naming the bad member, when it holds an absolute
path, a ``..`` component, a link leaving the folder, a device or FIFO, too many members, or more
bytes than allowed once unpacked. Extraction (into a temporary folder) then runs with tarfile's
``data`` filter as a second line of defence, which also catches chains of links.
"""

from __future__ import annotations

import io
import os
import posixpath
import tarfile
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from rayline.errors import InvalidInput, PayloadTooLarge

# The top folder inside a stored package zip: Ray unwraps a single top-level folder of a
# working_dir zip, so executions see the pipeline's files at the root of their directory.
PACKAGE_TOP = "pipeline"


def _normalized(name: str) -> str:
    if name.startswith("/") or PurePosixPath(name).is_absolute() or (len(name) > 1 and name[1] == ":"):
        raise InvalidInput(f"Archive member {name!r} has an absolute path; paths must be relative to the folder.")
    parts = [p for p in PurePosixPath(name).parts if p not in ("", ".")]
    if ".." in parts:
        raise InvalidInput(f"Archive member {name!r} contains '..'; paths must stay inside the folder.")
    return "/".join(parts)


def _check_link(member: tarfile.TarInfo, path: str) -> None:
    target = member.linkname
    if member.issym():
        if target.startswith("/"):
            raise InvalidInput(f"Archive member {path!r} links to the absolute path {target!r}.")
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
    else:  # a hard link names another member of the archive
        resolved = posixpath.normpath(target)
    if resolved == ".." or resolved.startswith("../") or resolved.startswith("/"):
        raise InvalidInput(f"Archive member {path!r} links to {target!r}, outside the pipeline folder.")


def check_members(tar: tarfile.TarFile, max_unpacked_bytes: int, max_members: int) -> list[tarfile.TarInfo]:
    members, total = [], 0
    for member in tar:
        if len(members) >= max_members:
            raise PayloadTooLarge(f"The archive has more than {max_members} files; upload only what the pipeline needs "
                                  "(container_config['included_folders']).")
        path = _normalized(member.name)
        if not path:
            continue
        if member.issym() or member.islnk():
            _check_link(member, path)
        elif not (member.isfile() or member.isdir()):
            raise InvalidInput(f"Archive member {path!r} is a device, FIFO or other special file; only files, "
                               "folders and links inside the folder are accepted.")
        total += member.size
        if total > max_unpacked_bytes:
            raise PayloadTooLarge(f"The archive unpacks to more than {max_unpacked_bytes} bytes; upload only what "
                                  "the pipeline needs (container_config['included_folders']).")
        member.name = path
        members.append(member)
    return members


def extract_archive(data: bytes, dest: Path, max_unpacked_bytes: int, max_members: int) -> None:
    """Check then extract a tar.gz (or plain tar) into ``dest``."""
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
            members = check_members(tar, max_unpacked_bytes, max_members)
            tar.extractall(dest, members=members, filter="data")
    except tarfile.FilterError as error:  # e.g. a chain of links that ends outside the folder
        member = error.tarinfo.name if getattr(error, "tarinfo", None) else "?"
        raise InvalidInput(f"Archive member {member!r} was refused: {error}.") from error
    except (tarfile.TarError, EOFError, OSError) as error:
        raise InvalidInput(f"step_file is not a readable tar.gz archive ({error}).") from error


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
