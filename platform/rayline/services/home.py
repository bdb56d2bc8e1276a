"""The permissions of ``RAYLINE_HOME``, checked at start-up (``rayline up``): the directory is the
user's alone (0700), and so are the secrets and the SQLite database in it (0600).

The secret files are the secret key, the SDK token and the control plane's own secrets
(``platform-secrets.json``). What is wider is narrowed, with a line in the log. What cannot be
narrowed because another user owns it refuses the start-up. A mount that this user cannot change (Kubernetes mounts the
``emptyDir`` of ``RAYLINE_HOME`` as root's, and the secret key read-only from a Secret) keeps the
permissions its mount gives it, with a warning: they are the deployment's to set.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from pathlib import Path

from sqlalchemy.engine import make_url

from rayline.config import Settings
from rayline.errors import PlatformFailure

logger = logging.getLogger("rayline.startup")

PRIVATE_DIRECTORY, PRIVATE_FILE = 0o700, 0o600
# SQLite's companions of a database file, while it is open or after a crash.
_SQLITE_SUFFIXES = ("", "-wal", "-shm", "-journal")


def sqlite_file(settings: Settings) -> Path | None:
    """The database file when the database is SQLite on disk (by default $RAYLINE_HOME/rayline.db)."""
    url = make_url(settings.resolved_database_url)
    if (
        url.get_backend_name() != "sqlite"
        or not url.database
        or url.database == ":memory:"
        or url.database.startswith("file:")
    ):
        return None
    return Path(url.database).expanduser().absolute()


def private_files(settings: Settings) -> list[Path]:
    database = sqlite_file(settings)
    databases = [database.with_name(database.name + suffix) for suffix in _SQLITE_SUFFIXES] if database else []
    return [settings.secret_key_path, settings.token_path, settings.platform_secrets_path, *databases]


def secure_home(settings: Settings) -> list[str]:
    """Create ``RAYLINE_HOME`` (0700) if missing, narrow it to 0700 and its secret key, SDK token
    and SQLite database files to 0600 where they are wider, and create a missing SQLite database
    file as 0600 (SQLite gives its -wal and -shm files the database file's mode; left to itself it
    would create it with the umask's, often 0644). Returns the lines logged.

    Raises ``PlatformFailure`` when a path is wider and this user cannot narrow it.
    """
    home = settings.home_dir
    home.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIRECTORY)
    lines = [_narrow(home, PRIVATE_DIRECTORY, "RAYLINE_HOME")]
    for path in private_files(settings):
        if path.exists():
            lines.append(_narrow(path, PRIVATE_FILE, path.name))
    database = sqlite_file(settings)
    if database is not None and not database.exists() and database.parent.is_dir():
        # An empty file is an empty database to SQLite. The umask can only narrow 0600.
        os.close(os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE))
    return [line for line in lines if line]


def _narrow(path: Path, mode: int, what: str) -> str | None:
    info = path.stat()
    current = stat.S_IMODE(info.st_mode)
    if not current & ~mode:  # no bit beyond the owner's read, write (and, for the directory, search)
        return None
    try:
        os.chmod(path, mode)
    except OSError as error:
        owner = f"owned by uid {info.st_uid}, this user is uid {os.geteuid()}"
        if error.errno == errno.EROFS or os.path.ismount(path):
            line = (
                f"{what} ({path}) has mode {current:04o}, wider than {mode:04o}, and cannot be changed here "
                f"({error.strerror}; {owner}): it is a mount, whose permissions are the deployment's to set "
                "(e.g. a Kubernetes Secret's defaultMode); keeping them."
            )
            logger.warning(line)
            return line
        raise PlatformFailure(
            f"Refusing to start: {what} ({path}) has mode {current:04o}, readable or writable by other users, and "
            f"it cannot be made {mode:04o} ({error.strerror}; {owner}). Run `rayline up` as its owner, or have its "
            f"owner run `chmod {mode:o} {path}` (or set RAYLINE_HOME to a directory of your own)."
        ) from None
    line = f"{what} ({path}) had mode {current:04o}, wider than {mode:04o}: set to {mode:04o}."
    logger.warning(line)
    return line
