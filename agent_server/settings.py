"""Settings: the one place the environment is read, once, at start-up."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path

from agent_server.errors import ConfigError

DEFAULT_MODEL = "claude-sonnet-4-6"
SANDBOX_PROVIDERS = ("local", "modal")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@dataclass(frozen=True)
class Settings:
    """Everything the server can be told from its environment (see README, Settings)."""

    port: int = 3001
    data_dir: Path = Path("./data")
    database_url: str = ""  # empty: sqlite:///<data_dir>/agent-server.db
    api_key: str | None = None
    anthropic_api_key: str | None = None
    anthropic_base_url: str | None = None
    model: str = DEFAULT_MODEL
    sandbox_provider: str = "local"
    modal_token_id: str | None = None
    modal_token_secret: str | None = None
    modal_app_name: str = "agent-server"
    idle_timeout_seconds: float = 900.0
    sync_interval_seconds: float = 30.0
    agent_profiles_dir: Path | None = None
    log_level: str = "INFO"
    max_body_bytes: int = 10 * 1024 * 1024
    exec_output_limit_bytes: int = 1024 * 1024

    def __post_init__(self) -> None:
        if not self.database_url:
            url = f"sqlite:///{Path(self.data_dir) / 'agent-server.db'}"
            object.__setattr__(self, "database_url", url)

    @property
    def workspaces_dir(self) -> Path:
        return Path(self.data_dir) / "workspaces"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read the settings from ``environ`` (default ``os.environ``).

        Raises ConfigError with one line naming the variable and what it allows.
        """
        env = os.environ if environ is None else environ
        values: dict = {}
        for f in fields(cls):
            var = ENV_NAMES[f.name]
            raw = env.get(var)
            if raw is None or raw.strip() == "":
                continue
            values[f.name] = _parse(var, f.name, raw.strip())
        settings = cls(**values)
        settings.check()
        return settings

    def check(self) -> None:
        """Cross-field checks that a single value cannot express."""
        if self.sandbox_provider == "modal" and not (
            self.modal_token_id and self.modal_token_secret
        ):
            raise ConfigError(
                "SANDBOX_PROVIDER=modal needs MODAL_TOKEN_ID and MODAL_TOKEN_SECRET "
                "(create a token at modal.com, or use SANDBOX_PROVIDER=local)"
            )
        if not (
            self.database_url.startswith(("sqlite:", "postgres", "postgresql"))
            or self.database_url == ":memory:"
        ):
            raise ConfigError(
                f"DATABASE_URL={self.database_url!r} is not supported: use "
                "sqlite:///path/to/file.db or postgresql://user@host:port/dbname"
            )


# name of each field's environment variable
ENV_NAMES = {
    "port": "PORT",
    "data_dir": "DATA_DIR",
    "database_url": "DATABASE_URL",
    "api_key": "AGENT_SERVER_API_KEY",
    "anthropic_api_key": "ANTHROPIC_API_KEY",
    "anthropic_base_url": "ANTHROPIC_BASE_URL",
    "model": "AGENT_SERVER_MODEL",
    "sandbox_provider": "SANDBOX_PROVIDER",
    "modal_token_id": "MODAL_TOKEN_ID",
    "modal_token_secret": "MODAL_TOKEN_SECRET",
    "modal_app_name": "MODAL_APP_NAME",
    "idle_timeout_seconds": "IDLE_TIMEOUT_SECONDS",
    "sync_interval_seconds": "SYNC_INTERVAL_SECONDS",
    "agent_profiles_dir": "AGENT_PROFILES_DIR",
    "log_level": "LOG_LEVEL",
    "max_body_bytes": "MAX_BODY_BYTES",
    "exec_output_limit_bytes": "EXEC_OUTPUT_LIMIT_BYTES",
}


def _parse(var: str, name: str, raw: str):
    if name == "port":
        value = _number(var, raw, int, "an integer port between 1 and 65535")
        if not 1 <= value <= 65535:
            raise ConfigError(
                f"{var}={raw!r} is invalid: use a port between 1 and 65535"
            )
        return value
    if name in ("idle_timeout_seconds", "sync_interval_seconds"):
        value = _number(var, raw, float, "a number of seconds greater than 0")
        if value <= 0:
            raise ConfigError(
                f"{var}={raw!r} is invalid: use a number of seconds greater than 0"
            )
        return value
    if name in ("max_body_bytes", "exec_output_limit_bytes"):
        value = _number(var, raw, int, "a positive integer number of bytes")
        if value <= 0:
            raise ConfigError(
                f"{var}={raw!r} is invalid: use a positive number of bytes"
            )
        return value
    if name == "sandbox_provider":
        if raw.lower() not in SANDBOX_PROVIDERS:
            raise ConfigError(
                f"{var}={raw!r} is invalid: use one of {', '.join(SANDBOX_PROVIDERS)}"
            )
        return raw.lower()
    if name == "log_level":
        if raw.upper() not in LOG_LEVELS:
            raise ConfigError(
                f"{var}={raw!r} is invalid: use one of {', '.join(LOG_LEVELS)}"
            )
        return raw.upper()
    if name in ("data_dir", "agent_profiles_dir"):
        return Path(raw)
    if name == "anthropic_base_url" and not raw.startswith(("http://", "https://")):
        raise ConfigError(f"{var}={raw!r} is invalid: use an http:// or https:// URL")
    return raw


def _number(var: str, raw: str, kind: type, allowed: str):
    try:
        return kind(raw)
    except ValueError:
        raise ConfigError(f"{var}={raw!r} is invalid: use {allowed}") from None
