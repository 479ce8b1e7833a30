from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.hub import RunningHub, run_hub


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[RunningHub]:
    """A real ssf-hub on a free loopback port with a fresh SQLite data dir."""
    async with run_hub(tmp_path / "data", long_poll_seconds=2.0) as running:
        yield running
