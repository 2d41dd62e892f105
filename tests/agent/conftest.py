"""Fixtures for the agent tests: the fake Messages API, a real local sandbox, a loop."""

from __future__ import annotations

import pytest

from agent_server.agent.loop import AgentLoop
from agent_server.agent.model import ModelClient
from agent_server.devtools.fake_anthropic import FakeAnthropic
from agent_server.persistence.types import AgentProfile
from agent_server.sandbox.local_sandbox import LocalSandboxProvider


class EventRecorder:
    """The ``emit`` callback of a loop: keeps every (name, data) in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict]] = []

    def __call__(self, name: str, data: dict) -> None:
        self.events.append((name, data))

    def names(self) -> list[str]:
        return [n for n, _ in self.events]

    def of(self, name: str) -> list[dict]:
        return [d for n, d in self.events if n == name]

    def completed_blocks(self, type_: str | None = None) -> list[dict]:
        """The blocks of every block:complete (optionally of one type), in order."""
        return [
            d["block"]
            for n, d in self.events
            if n == "session:block:complete"
            and (type_ is None or d["block"]["type"] == type_)
        ]


@pytest.fixture
def agent_fake():
    with FakeAnthropic() as server:
        yield server


@pytest.fixture
def agent_provider(tmp_path):
    return LocalSandboxProvider(tmp_path / "workspaces")


@pytest.fixture
def agent_sandbox(agent_provider):
    sandbox = agent_provider.create("sess1")
    yield sandbox
    sandbox.terminate()


@pytest.fixture
def loop_factory(agent_fake, agent_sandbox):
    """make(profile=None, **loop_options) -> (loop, recorder), wired to the fake and sandbox."""

    def make(profile: AgentProfile | None = None, *, max_retries: int = 0, **options):
        recorder = EventRecorder()
        client = ModelClient(
            api_key="test-key", base_url=agent_fake.base_url, max_retries=max_retries
        )
        options.setdefault("retry_delays", (0, 0))
        options.setdefault("get_sandbox", lambda: agent_sandbox)
        loop = AgentLoop(
            client,
            profile or AgentProfile(id="p", name="test"),
            emit=recorder,
            **options,
        )
        return loop, recorder

    return make
