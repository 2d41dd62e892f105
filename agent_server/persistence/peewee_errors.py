"""Vendor exceptions (peewee, psycopg, sqlite3) become PersistenceError here."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

import peewee
import psycopg
from playhouse.pool import MaxConnectionsExceeded

from agent_server.errors import PersistenceError

VENDOR_ERRORS = (peewee.PeeweeException, psycopg.Error, sqlite3.Error)


@contextmanager
def translated(action: str, where: str) -> Iterator[None]:
    """Raise any vendor error inside as PersistenceError naming ``action`` and ``where``."""
    try:
        yield
    except MaxConnectionsExceeded:  # a ValueError: must come first
        raise PersistenceError(f"{action}: no free connection to {where}") from None
    except (peewee.OperationalError, peewee.InterfaceError, psycopg.Error) as exc:
        raise PersistenceError(
            f"{action} failed on {where}: {first_line(exc)}"
        ) from exc
    except VENDOR_ERRORS as exc:
        raise PersistenceError(
            f"{action} failed on {where}: {type(exc).__name__}: {first_line(exc)}"
        ) from exc


def first_line(exc: BaseException) -> str:
    """The first line of the exception's message (its type name when it has none)."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
