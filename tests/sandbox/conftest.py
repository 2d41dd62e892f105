"""The ``provider`` fixture: every sandbox provider the contract suite runs against."""

from __future__ import annotations

import os
import uuid
from contextlib import ExitStack

import pytest

from agent_server.sandbox.local_sandbox import LocalSandboxProvider, bwrap_status

# small, so truncation is cheap to provoke; every other contract case prints far less
CONTRACT_OUTPUT_LIMIT = 4096


def require_bwrap() -> None:
    """Skip (or fail, with AGENT_SERVER_REQUIRE_BWRAP=1) when bwrap cannot run here."""
    path, problem = bwrap_status()
    if path is None:
        if os.environ.get("AGENT_SERVER_REQUIRE_BWRAP") == "1":
            pytest.fail(f"AGENT_SERVER_REQUIRE_BWRAP=1 but {problem}")
        pytest.skip(f"local-bwrap needs bubblewrap: {problem}")


MODAL_FACTORIES = {
    "modal-fake": "fake_modal_provider",
    "modal-live": "live_modal_provider",
}


def _modal_provider(stack: ExitStack, which: str):
    try:
        from tests.sandbox import modal_support
    except Exception as exc:  # not written yet, or broken: say so, run the rest
        pytest.skip(
            f"{which} needs tests/sandbox/modal_support.py "
            f"({type(exc).__name__}: {exc})"
        )
    factory = getattr(modal_support, MODAL_FACTORIES[which], None)
    if factory is None:
        pytest.skip(f"tests/sandbox/modal_support.py has no {MODAL_FACTORIES[which]}")
    try:
        cm = factory(output_limit=CONTRACT_OUTPUT_LIMIT)
    except TypeError:  # a factory without the option: the test reads the limit
        cm = factory()
    return stack.enter_context(cm)


@pytest.fixture(params=["local-bwrap", "local-plain", "modal-fake", "modal-live"])
def provider(request, tmp_path):
    """A fresh provider of each kind; the sandboxes made through it end with the test."""
    with ExitStack() as stack:
        if request.param.startswith("local-"):
            bwrap = request.param == "local-bwrap"
            if bwrap:
                require_bwrap()
            p = LocalSandboxProvider(
                tmp_path / "workspaces",
                use_bwrap=bwrap,
                output_limit=CONTRACT_OUTPUT_LIMIT,
                hidden_paths=(tmp_path / "data",),
            )
            stack.callback(p.close)
        else:
            p = _modal_provider(stack, request.param)  # its context closes it
        yield p


@pytest.fixture
def make_sandbox(provider):
    """make_sandbox(env=..., files=...): a sandbox of a new session, terminated after."""
    made = []

    def make(session_id: str | None = None, **kwargs):
        sandbox = provider.create(session_id or f"s-{uuid.uuid4().hex[:12]}", **kwargs)
        made.append(sandbox)
        return sandbox

    yield make
    for sandbox in made:
        sandbox.terminate()
