"""The console tests' hub: push streams to loopback receivers allowed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.hub import RunningHub, run_hub


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[RunningHub]:
    async with run_hub(tmp_path / "data", long_poll_seconds=1.0, allow_private_endpoints=True) as running:
        yield running
