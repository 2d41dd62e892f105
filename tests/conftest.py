"""Shared fixtures. gevent patches the stdlib before anything else is imported."""

from gevent import monkey

monkey.patch_all()

import os  # noqa: E402

import pytest  # noqa: E402

PG_URL = os.environ.get(
    "TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


@pytest.fixture
def data_dir(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    return d


@pytest.fixture
def pg_url():
    """URL of a fresh, empty PostgreSQL database, dropped after the test.

    Skips when the server cannot be reached, unless AGENT_SERVER_REQUIRE_POSTGRES=1.
    """
    import uuid
    from urllib.parse import urlsplit, urlunsplit

    import psycopg

    name = f"agent_server_test_{uuid.uuid4().hex[:16]}"
    try:
        admin = psycopg.connect(PG_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        reason = f"PostgreSQL at {PG_URL} is not reachable: {exc}".splitlines()[0]
        if os.environ.get("AGENT_SERVER_REQUIRE_POSTGRES") == "1":
            pytest.fail(reason + " (AGENT_SERVER_REQUIRE_POSTGRES=1)")
        pytest.skip(reason)
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield urlunsplit(urlsplit(PG_URL)._replace(path=f"/{name}"))
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
