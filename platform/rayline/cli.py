"""``rayline``: the command line. ``rayline up`` starts the whole platform in the foreground."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

from pydantic import ValidationError
from pydantic_settings import SettingsError

from rayline.config import Settings, describe_settings_error
from rayline.domain.names import CONTROL_PLANE_APP
from rayline.errors import RaylineError


def _prepare(settings: Settings, args: argparse.Namespace) -> None:
    """What `rayline up` checks and sets up before Ray starts; raises ``RaylineError`` to refuse."""
    from rayline.services.credentials import ensure_sdk_token, ensure_secret_key
    from rayline.services.home import secure_home
    from rayline.services.platform_secrets import write_platform_secrets
    from rayline.store import migrate
    from rayline.store.db import Database
    from rayline.store.executions import end_unfinished_executions
    from rayline.store.record_sql import replay_all_orphans

    secure_home(settings)  # RAYLINE_HOME 0700; its secrets and SQLite files 0600
    db = Database(settings.resolved_database_url)
    try:
        migrate.upgrade(db)
        ensure_sdk_token(settings, db)
        ensure_secret_key(settings)
        write_platform_secrets(settings)
        if not args.ray_address:  # a new cluster: nothing from before is still running
            # First what pods had answered but not committed, so that those calls are not ended.
            replay_all_orphans(db, settings.home_dir / "journal")
            ended = end_unfinished_executions(db, "The platform stopped before this execution ended.")
            if ended:
                print(f"Marked {ended} execution(s) left unfinished by the last run as Error.", flush=True)
    finally:
        db.dispose()


def _settings(command: str) -> Settings | None:
    """``Settings()``, or None once each problem is told on one line (naming its variable)."""
    try:
        return Settings()
    except (ValidationError, SettingsError) as error:
        for line in describe_settings_error(error):
            print(f"rayline {command}: {line}", file=sys.stderr, flush=True)
        return None


def _refuse(error: RaylineError) -> int:
    print(f"rayline up: {error.message}", file=sys.stderr, flush=True)
    return 2


def _delete_control_plane() -> None:
    """On an attached cluster, which outlives `rayline up`, a refused start leaves nothing serving:
    the control plane's Serve application, deployed detached, would go on with the bad setting."""
    from rayline.runtime import cluster

    try:
        cluster.delete_control_plane()
    except Exception as error:  # the refusal is still told, last
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        print(
            f"rayline up: could not delete the control plane's Serve application {CONTROL_PLANE_APP!r} "
            f"({first_line}): it may still run on the cluster",
            file=sys.stderr,
            flush=True,
        )


def _up(args: argparse.Namespace) -> int:
    from rayline.runtime import cluster, startup_checks

    settings = _settings("up")
    if settings is None:
        return 2
    # Ray's processes (and so the users' code) inherit this environment: no RAYLINE_* setting
    # (tokens, the database URL) goes further. The control plane gets the settings as arguments,
    # and their secrets from a 0600 file (services/platform_secrets.py).
    for name in [name for name in os.environ if name.startswith("RAYLINE_")]:
        del os.environ[name]
    attached: startup_checks.RayAddress | None = None  # a cluster that outlives `rayline up`
    if args.ray_address is not None:
        # Before anything is stored: attaching first, a refused driver (no cluster there, or
        # not its token) has migrated nothing and written no token. What ray.init attaches to
        # is the address checked (RAY_ADDRESS is not read again).
        try:
            attached = startup_checks.check_ray_address(args.ray_address)
            cluster.connect(settings, attached)
        except RaylineError as error:
            cluster.stop()
            return _refuse(error)
    try:
        _prepare(settings, args)
    except RaylineError as error:
        if args.ray_address:
            cluster.stop()
        return _refuse(error)
    from serve_apps.control_plane import build as control_plane

    # Where a Ray driver can attach (`ray.init(address=...)`), e.g. a benchmark's baseline.
    address_file = settings.home_dir / "ray-address"
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    print(f"Starting Rayline (state in {settings.home_dir})...", flush=True)
    try:  # a refusal is told once everything it started has stopped: it is the last line
        try:
            address = cluster.start(settings, control_plane, ray_address=attached)
            address_file.write_text(address + "\n")
            cluster.wait_until_healthy(settings)
            try:
                unchecked = startup_checks.check_package_url(settings)
            except RaylineError:
                if attached is not None:
                    _delete_control_plane()
                raise
            if unchecked:
                print(f"rayline up: {unchecked}", file=sys.stderr, flush=True)
            token_hint = (
                "the RAYLINE_SDK_TOKEN it was started with"
                if settings.sdk_token is not None
                else f"cat {settings.token_path}"
            )
            print(
                "\nRayline is up.\n"
                f"  Web console:     {settings.environment_url}/  (sign in with the SDK token)\n"
                f"  Environment URL: {settings.environment_url}\n"
                f"  API docs:        {settings.environment_url}/api/v1/docs\n"
                f"  Ray dashboard:   http://{settings.dashboard_host}:{settings.dashboard_port}\n"
                f"  SDK token:       {token_hint}\n"
                "\n  from rayline import RaylineSdk\n"
                f"  sdk = RaylineSdk(environment_url={settings.environment_url!r})\n"
                "\nPress Ctrl-C to stop.",
                flush=True,
            )
            while not stop.wait(1.0):
                pass
            print("\nStopping Rayline...", flush=True)
            return 0
        finally:
            address_file.unlink(missing_ok=True)
            cluster.stop()
            print("Rayline stopped.", flush=True)
    except RaylineError as error:
        return _refuse(error)


def _token(_: argparse.Namespace) -> int:
    settings = _settings("token")
    if settings is None:
        return 2
    if settings.sdk_token is not None:
        print(settings.sdk_token.get_secret_value())
        return 0
    try:
        print(settings.token_path.read_text().strip())
    except OSError:
        print(f"No token yet at {settings.token_path}: run `rayline up` first.", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rayline", description="Run Python pipelines on Ray.")
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start the platform in the foreground (Ctrl-C stops it)")
    up.add_argument(
        "--ray-address", default=None, help="attach to an existing Ray cluster (e.g. 'auto') instead of starting one"
    )
    up.set_defaults(run=_up)
    token = commands.add_parser("token", help="print the SDK token")
    token.set_defaults(run=_token)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
