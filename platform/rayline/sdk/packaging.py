"""Packing a pipeline's folder into the tar.gz the platform accepts.

The platform re-checks everything (it never trusts an archive), but checking here gives the
notebook user a clear ``ValueError`` before anything is uploaded.
"""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

# Folders that are never part of a pipeline's code and can be huge.
SKIPPED_NAMES = {".git", ".venv", "venv", "__pycache__", ".ipynb_checkpoints", ".mypy_cache", ".pytest_cache"}


def _check_link(root: Path, path: Path) -> None:
    if os.readlink(path).startswith("/"):
        raise ValueError(f"{path} is a link with an absolute target; make it relative to the pipeline folder.")
    target = path.resolve()
    if not target.is_relative_to(root):
        raise ValueError(
            f"{path} is a link to {target}, outside the pipeline folder {root}. "
            "Copy the file into the folder instead of linking to it."
        )


def pack_folder(local_folder: str | os.PathLike, included: list[str] | None = None) -> bytes:
    """Return a gzip'ed tar of ``local_folder`` (or of its ``included`` files and folders).

    Members are stored relative to the folder. Links are kept only when they point inside it.
    """
    root = Path(local_folder).expanduser().resolve()
    if not root.is_dir():
        raise ValueError(f"container_config['local_folder'] must be an existing folder, not {str(local_folder)!r}.")
    starts = [root]
    if included:
        starts = []
        for item in included:
            path = (root / item.lstrip("/")).resolve()
            if not path.is_relative_to(root) or not path.exists():
                raise ValueError(f"included_folders entry {item!r} is not a file or folder inside {root}.")
            starts.append(path)

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for start in starts:
            for path in _walk(start):
                if path.is_symlink():
                    _check_link(root, path)
                elif not path.is_file():  # FIFOs, sockets, devices
                    continue
                tar.add(path, arcname=path.relative_to(root).as_posix(), recursive=False)
    return buffer.getvalue()


def _walk(start: Path):
    if start.is_file() or start.is_symlink():
        yield start
        return
    for dirpath, dirnames, filenames in os.walk(start):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIPPED_NAMES)
        here = Path(dirpath)
        for name in sorted(filenames):
            yield here / name
        for name in dirnames:
            if (here / name).is_symlink():
                yield here / name
