"""Shared fixtures. Servers, chargers and pages are real; see tests/support.py."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from ocpplab.config import Settings
from tests.support import RunningServer, serve


@pytest.fixture
async def server() -> AsyncIterator[RunningServer]:
    """ocpplab with the in-memory broker under a real uvicorn on an ephemeral port."""
    async with serve(Settings(call_timeout=2.0, manual_timeout=5.0)) as running:
        yield running
