"""Fixtures for end-to-end tests: the fake Messages API and a real server on port 0."""

from __future__ import annotations

import pytest

from agent_server.devtools.fake_anthropic import FakeAnthropic
from agent_server.persistence.peewee_persistence import PeeweePersistence
from tests.runtime.harness import ServerHarness


@pytest.fixture
def fake_model():
    with FakeAnthropic(mode="echo") as fake:
        yield fake


@pytest.fixture
def make_server(tmp_path, fake_model):
    """Factory: make_server(database_url=None, **runtime_options) -> started ServerHarness."""
    servers: list[ServerHarness] = []

    def make(database_url: str | None = None, **options) -> ServerHarness:
        url = database_url or f"sqlite:///{tmp_path / 'agent-server.db'}"
        harness = ServerHarness(
            tmp_path / "data",
            model_url=fake_model.base_url,
            make_persistence=lambda: PeeweePersistence(url),
            **options,
        )
        servers.append(harness)
        return harness.start()

    yield make
    for harness in servers:
        harness.stop()


@pytest.fixture
def server(make_server):
    return make_server()


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def database_url(request, tmp_path):
    """The server's database: a SQLite file, then a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'agent-server.db'}"
    return request.getfixturevalue("pg_url")
