"""Pytest fixtures for the stand-in Flow server.

tests/conftest.py loads them for every test module (``pytest_plugins``), so a test names
them as arguments without importing them; ``standin_settings`` is a plain function, imported.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from dupe_scanner.backends.flow import FlowBackend
from dupe_scanner.settings import FlowSettings
from tests.flow_standin.server import FlowStandIn


@pytest.fixture
def flow_standin() -> Iterator[FlowStandIn]:
    """A stand-in Flow listening on 127.0.0.1 (a fresh, empty one per test)."""
    with FlowStandIn() as standin:
        yield standin


def standin_settings(standin: FlowStandIn, **overrides) -> FlowSettings:
    """FlowSettings pointing at ``standin``, with timeouts short enough for a fast test suite."""
    values: dict[str, Any] = dict(
        url=standin.url,
        collection=standin.collection,
        connect_timeout=0.5,
        read_timeout=2.0,
        retries=2,
        commit_every=100,
        thumbnail_size=350,
    )
    values.update(overrides)
    return FlowSettings(**values)


@pytest.fixture
def flow_settings(flow_standin: FlowStandIn) -> FlowSettings:
    return standin_settings(flow_standin)


@pytest.fixture
def flow_backend(flow_settings: FlowSettings) -> Iterator[FlowBackend]:
    """A FlowBackend on the stand-in, with millisecond backoff so retries cost no time."""
    backend = FlowBackend(flow_settings, "balanced", backoff_seconds=0.01)
    yield backend
    backend.close()
