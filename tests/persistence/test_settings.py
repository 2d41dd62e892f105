"""Settings.from_env: defaults, one clear ConfigError per bad value, DATABASE_URL."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent_server.errors import ConfigError
from agent_server.persistence.peewee_persistence import PeeweePersistence
from agent_server.persistence.types import SessionRecord
from agent_server.settings import DEFAULT_MODEL, Settings


def test_defaults_with_an_empty_environment():
    settings = Settings.from_env({})
    assert settings.port == 3001
    assert settings.data_dir == Path("data")
    assert settings.database_url == "sqlite:///data/agent-server.db"
    assert settings.api_key is None
    assert settings.model == DEFAULT_MODEL
    assert settings.sandbox_provider == "local"
    assert settings.idle_timeout_seconds == 900.0
    assert settings.sync_interval_seconds == 30.0
    assert settings.agent_profiles_dir is None
    assert settings.log_level == "INFO"
    assert settings.max_body_bytes == 10 * 1024 * 1024
    assert settings.workspaces_dir == Path("data/workspaces")


def test_values_are_read_and_converted():
    settings = Settings.from_env(
        {
            "PORT": "8080",
            "DATA_DIR": "/srv/agents",
            "AGENT_SERVER_API_KEY": "k",
            "IDLE_TIMEOUT_SECONDS": "60.5",
            "SANDBOX_PROVIDER": "LOCAL",
            "LOG_LEVEL": "debug",
            "AGENT_PROFILES_DIR": "/etc/profiles",
            "ANTHROPIC_BASE_URL": "http://127.0.0.1:9999",
            "MAX_BODY_BYTES": " 2048 ",
        }
    )
    assert settings.port == 8080
    assert settings.data_dir == Path("/srv/agents")
    assert settings.api_key == "k"
    assert settings.idle_timeout_seconds == 60.5
    assert settings.sandbox_provider == "local"
    assert settings.log_level == "DEBUG"
    assert settings.agent_profiles_dir == Path("/etc/profiles")
    assert settings.max_body_bytes == 2048


def test_blank_values_count_as_unset():
    assert Settings.from_env({"PORT": "  ", "DATABASE_URL": ""}).port == 3001


@pytest.mark.parametrize(
    ("var", "value", "allowed"),
    [
        ("PORT", "http", "port"),
        ("PORT", "0", "between 1 and 65535"),
        ("PORT", "70000", "between 1 and 65535"),
        ("IDLE_TIMEOUT_SECONDS", "soon", "seconds"),
        ("IDLE_TIMEOUT_SECONDS", "-1", "greater than 0"),
        ("SYNC_INTERVAL_SECONDS", "0", "greater than 0"),
        ("MAX_BODY_BYTES", "10MB", "bytes"),
        ("EXEC_OUTPUT_LIMIT_BYTES", "-5", "positive"),
        ("SANDBOX_PROVIDER", "docker", "local, modal"),
        ("LOG_LEVEL", "verbose", "DEBUG"),
        ("ANTHROPIC_BASE_URL", "ftp://example", "http"),
        ("DATABASE_URL", "mysql://localhost/app", "sqlite:///"),
    ],
)
def test_each_invalid_value_names_its_variable(var, value, allowed):
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({var: value})
    message = str(caught.value)
    assert var in message
    assert allowed in message
    assert "\n" not in message


def test_modal_sandboxes_need_both_tokens():
    with pytest.raises(ConfigError, match="MODAL_TOKEN_ID and MODAL_TOKEN_SECRET"):
        Settings.from_env({"SANDBOX_PROVIDER": "modal", "MODAL_TOKEN_ID": "ak-1"})
    settings = Settings.from_env(
        {
            "SANDBOX_PROVIDER": "modal",
            "MODAL_TOKEN_ID": "ak-1",
            "MODAL_TOKEN_SECRET": "as-1",
        }
    )
    assert settings.sandbox_provider == "modal"


def test_postgres_urls_are_accepted():
    for url in ("postgres://u@h:5432/db", "postgresql://u:p@h/db"):
        assert Settings.from_env({"DATABASE_URL": url}).database_url == url


def test_default_database_lives_under_data_dir_and_opens(tmp_path):
    data_dir = tmp_path / "state"
    settings = Settings.from_env({"DATA_DIR": str(data_dir)})
    assert settings.database_url == f"sqlite:///{data_dir}/agent-server.db"

    store = PeeweePersistence(settings.database_url)
    try:
        store.create_session_record(SessionRecord("s1", "default"))
    finally:
        store.close()
    assert (data_dir / "agent-server.db").is_file()
