"""Shared fixtures. Servers, chargers and pages are real; see tests/support.py."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from ocpplab.config import Settings
from tests.support import RunningServer, serve

# Fixtures of two Redis test modules that other modules use too (a private redis-server,
# two ocpplab processes on one Redis), shared from here rather than written again.
from tests.test_redis_faults import redis_server  # noqa: F401
from tests.test_redis_processes import pair  # noqa: F401


@pytest.fixture
async def server() -> AsyncIterator[RunningServer]:
    """ocpplab with the in-memory broker under a real uvicorn on an ephemeral port."""
    async with serve(Settings(call_timeout=2.0, manual_timeout=5.0)) as running:
        yield running
