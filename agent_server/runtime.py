"""AgentRuntime: wires persistence, sandboxes, the agent engine, events and jobs."""

from __future__ import annotations

import logging
from pathlib import Path

from agent_server.events.bus import EventBus, LocalEventBus
from agent_server.persistence.base import PersistenceAdapter
from agent_server.profiles import ProfileCatalog
from agent_server.sandbox.base import SandboxProvider
from agent_server.sessions.manager import SessionManager
from agent_server.sessions.session import SessionServices
from agent_server.settings import Settings

log = logging.getLogger(__name__)


class AgentRuntime:
    """The running server minus its transports: sessions, jobs and their services."""

    def __init__(
        self,
        persistence: PersistenceAdapter,
        sandbox: SandboxProvider,
        *,
        settings: Settings,
        bus: EventBus | None = None,
        model_client=None,
        idle_timeout: float | None = None,
        sync_interval: float | None = None,
        profiles_dir: Path | str | None = None,
        health_interval: float = 30.0,
        flush_interval: float = 2.0,
        outbox_limit: int | None = None,
    ) -> None:
        self.settings = settings
        self.persistence = persistence
        self.sandbox_provider = sandbox
        self.bus = bus or LocalEventBus()
        self.idle_timeout = (
            settings.idle_timeout_seconds if idle_timeout is None else idle_timeout
        )
        self.sync_interval = (
            settings.sync_interval_seconds if sync_interval is None else sync_interval
        )
        if self.idle_timeout <= 0 or self.sync_interval <= 0:
            raise ValueError(
                "idle_timeout and sync_interval must be seconds greater than 0"
            )
        self.health_interval = health_interval
        self.flush_interval = flush_interval
        # events that may wait for one slow WebSocket/SSE client before it is closed
        self.outbox_limit = outbox_limit
        self._model_client = model_client
        self.profiles = ProfileCatalog(
            persistence, profiles_dir or settings.agent_profiles_dir
        )
        self.session_manager = SessionManager(
            SessionServices(
                persistence=persistence,
                sandbox_provider=sandbox,
                bus=self.bus,
                model_client=self.model_client,
                default_model=settings.model,
            ),
            self.profiles,
        )
        self._scheduler = None
        self.started = False

    def model_client(self):
        """The shared Messages API client, created on first use."""
        if self._model_client is None:
            from agent_server.agent.model import ModelClient

            self._model_client = ModelClient(
                api_key=self.settings.anthropic_api_key,
                base_url=self.settings.anthropic_base_url,
            )
        return self._model_client

    def start(self) -> AgentRuntime:
        """Load the session list and start the background jobs."""
        if self.started:
            return self
        from agent_server.jobs import start_jobs

        self.model_client()  # imports the SDK now, not in the first turn (it blocks ~1 s)
        self.session_manager.start()
        self._scheduler = start_jobs(
            self.session_manager,
            sync_interval=self.sync_interval,
            idle_timeout=self.idle_timeout,
            health_interval=self.health_interval,
            flush_interval=self.flush_interval,
        )
        self.started = True
        log.info(
            "agent-server runtime started: %d stored sessions, sandbox=%s (%s)",
            len(self.session_manager.records()),
            self.sandbox_provider.name,
            "isolated" if self.sandbox_provider.isolated else "NOT isolated",
        )
        return self

    def create_app(self, api_key: str | None = None):
        """The Flask app: REST blueprints, the WebSocket route and the SSE stream."""
        from agent_server.api.app import create_app

        return create_app(self, api_key=api_key)

    def shutdown(self) -> None:
        """Stop the jobs; sync and unload every session; end their sandboxes."""
        if self._scheduler is not None:
            self._scheduler.shutdown(
                wait=True
            )  # a running sync must end before close()
            self._scheduler = None
        self.session_manager.shutdown()
        self.sandbox_provider.close()
        self.persistence.close()
        self.started = False


def create_runtime(
    persistence: PersistenceAdapter | None = None,
    sandbox: SandboxProvider | None = None,
    *,
    settings: Settings | None = None,
    **options,
) -> AgentRuntime:
    """Build a runtime; what is not given comes from ``settings`` (default: the environment)."""
    settings = settings or Settings.from_env()
    if persistence is None:
        from agent_server.persistence.peewee_persistence import PeeweePersistence

        Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
        persistence = PeeweePersistence(settings.database_url)
    if sandbox is None:
        from agent_server.sandbox.registry import create_provider

        sandbox = create_provider(settings)
    return AgentRuntime(persistence, sandbox, settings=settings, **options)
