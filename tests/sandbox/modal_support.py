"""Modal providers for tests: one against the project's fake Modal, one live."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from agent_server.devtools.fake_modal import FakeModal
from agent_server.sandbox.modal_sandbox import ModalSandboxProvider


@contextmanager
def fake_modal_provider(**options) -> Iterator[ModalSandboxProvider]:
    """A ModalSandboxProvider talking to a fresh FakeModal; ``.fake`` is the fake."""
    with FakeModal() as fake:
        saved = os.environ.get("MODAL_SERVER_URL")
        os.environ["MODAL_SERVER_URL"] = fake.url
        options.setdefault("call_timeout", 10.0)
        provider = ModalSandboxProvider(
            app_name="agent-server-tests",
            token_id="ak-fake",
            token_secret="as-fake",
            **options,
        )
        provider.fake = fake
        try:
            yield provider
        finally:
            provider.close()
            if saved is None:
                os.environ.pop("MODAL_SERVER_URL", None)
            else:
                os.environ["MODAL_SERVER_URL"] = saved


@contextmanager
def live_modal_provider(**options) -> Iterator[ModalSandboxProvider]:
    """A provider on real Modal; skips unless MODAL_TOKEN_ID/SECRET are set."""
    token_id = os.environ.get("MODAL_TOKEN_ID")
    token_secret = os.environ.get("MODAL_TOKEN_SECRET")
    if not (token_id and token_secret):
        pytest.skip("MODAL_TOKEN_ID not set: live Modal tests skipped")
    provider = ModalSandboxProvider(
        app_name="agent-server-tests",
        token_id=token_id,
        token_secret=token_secret,
        **options,
    )
    try:
        yield provider
    finally:
        provider.close()
