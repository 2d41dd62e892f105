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
