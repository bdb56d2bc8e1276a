"""Environment variables in SQL, with a version that warm replicas watch to reload them."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from rayline.store.db import Database, rowcount
from rayline.store.executions import take_numbers
from rayline.store.models import Counter, EnvironmentVariable, utcnow

VERSION_COUNTER = "environment-variables"


def version(session: Session) -> int:
    return session.execute(select(Counter.value).where(Counter.name == VERSION_COUNTER)).scalar() or 0


def load(session: Session, open_sealed: Callable[[str], str]) -> dict[str, str]:
    return {row.name: open_sealed(row.value_sealed) for row in session.scalars(select(EnvironmentVariable))}


def put(db: Database, sealed: dict[str, str]) -> int:
    """Create or replace variables (values already sealed); returns the new version."""
    with db.session() as session:
        for name, value in sealed.items():
            session.merge(EnvironmentVariable(name=name, value_sealed=value, updated_at=utcnow()))
    return take_numbers(db, VERSION_COUNTER)[-1]


def remove(db: Database, name: str) -> int | None:
    """Delete one variable; returns the new version, or None when there was no such variable."""
    with db.session() as session:
        if not rowcount(session.execute(delete(EnvironmentVariable).where(EnvironmentVariable.name == name))):
            return None
    return take_numbers(db, VERSION_COUNTER)[-1]
