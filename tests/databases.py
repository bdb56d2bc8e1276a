"""The SQL databases the store's tests run on: SQLite, and a real PostgreSQL server started here.

PostgreSQL comes from Debian's `postgresql` package (``make test`` installs it when it runs as
root, as CI does). Where its server programs are missing, the PostgreSQL cases skip and say how
to enable them. The server refuses to run as root: as root, it runs as the `postgres` user.
"""

from __future__ import annotations

import atexit
import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import sqlalchemy

from rayline.ports import free_port

HOW_TO_ENABLE = (
    "PostgreSQL's server programs (initdb, pg_ctl) are not installed: `apt-get install postgresql` "
    "(make test does it when run as root), then run the tests again."
)


def _bindir() -> Path | None:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    found = candidates[-1] if candidates else shutil.which("initdb")
    return Path(found).parent if found else None


class PostgresServer:
    """A throwaway PostgreSQL server on 127.0.0.1, trust authentication, data under /tmp."""

    def __init__(self) -> None:
        """Raises FileNotFoundError, saying why, when no server can be started here."""
        bindir = _bindir()
        if bindir is None:
            raise FileNotFoundError(HOW_TO_ENABLE)
        self._root = Path(tempfile.mkdtemp(prefix="rayline-postgres-"))
        self._as_user: list[str] = []
        self._pg_ctl, self._data = str(bindir / "pg_ctl"), str(self._root / "data")
        self.port = free_port()
        try:
            if os.geteuid() == 0:
                shutil.chown(self._root, "postgres", "postgres")
                self._as_user = ["runuser", "-u", "postgres", "--"]
            self._run(str(bindir / "initdb"), "-D", self._data, "-U", "rayline", "--auth=trust", "-E", "UTF8")
            self._run(
                self._pg_ctl,
                "-D",
                self._data,
                "-l",
                str(self._root / "server.log"),
                "-w",
                "start",
                "-o",
                f"-p {self.port} -k {self._root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            )
        except (LookupError, subprocess.CalledProcessError) as error:  # no postgres user, or it failed
            shutil.rmtree(self._root, ignore_errors=True)
            detail = getattr(error, "stderr", b"") or b""
            raise FileNotFoundError(
                f"PostgreSQL could not be started here ({error}; "
                f"{detail.decode(errors='replace')[-300:]}). {HOW_TO_ENABLE}"
            ) from error
        atexit.register(self.stop)  # also when a timeout ends the tests early

    def _run(self, *command: str) -> None:
        subprocess.run([*self._as_user, *command], check=True, capture_output=True, cwd=self._root)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://rayline@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """The URL of a new, empty database."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        engine = sqlalchemy.create_engine(self.url(), isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
        return self.url(name)

    def stop(self) -> None:
        if not self._root.exists():
            return
        try:
            self._run(self._pg_ctl, "-D", self._data, "-m", "immediate", "stop")
        except subprocess.CalledProcessError:
            pass  # already stopped
        finally:
            shutil.rmtree(self._root, ignore_errors=True)
