"""Sends the store's commands to one Redis in batches: what every task of the process asks
for in one turn of the event loop goes out as one pipeline, one round trip.

Each round trip costs the hub far more CPU in redis-py (taking a pooled connection, its
checks, the timeouts, two system calls) than each command in it, and a hub serving many
requests at once issues its commands a few at a time from each. So the commands of one
loop turn share a pipeline; a caller's own commands stay together and in order, so a call
that needs "these, in this order" (``RedisEngine._pipelined``) still gets that. While one
batch waits for Redis the next one fills and goes out on another pooled connection: no
caller waits behind another's round trip, only for the end of the loop turn.

Nothing else changes for a caller: each gets its own replies, errors included (a command
that fails does not fail the others in its batch, as on a pipeline); an outage fails every
caller of the batch with the same connection error, which the store maps to 503. A cluster
is not batched: its commands go to different nodes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import redis.asyncio as aioredis

Commands = Sequence[tuple[Any, ...]]


class CommandBatcher:
    def __init__(self, client: Callable[[], aioredis.Redis]) -> None:
        self._client = client
        self._queued: list[tuple[Commands, asyncio.Future[list[Any]]]] = []
        self._flushes: set[asyncio.Task[None]] = set()
        self.batches = 0  # round trips made, for tests and profiling
        self.commands = 0

    async def send(self, commands: Commands) -> list[Any]:
        """The replies to ``commands`` (exceptions in place of failed ones), sent with the
        other commands queued in this loop turn."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Any]] = loop.create_future()
        if not self._queued:
            loop.call_soon(self._flush_soon)
        self._queued.append((commands, future))
        return await future

    def _flush_soon(self) -> None:
        batch, self._queued = self._queued, []
        task = asyncio.create_task(self._flush(batch), name="redis-batch")
        self._flushes.add(task)
        task.add_done_callback(self._flushes.discard)

    async def _flush(self, batch: list[tuple[Commands, asyncio.Future[list[Any]]]]) -> None:
        wanted = [(commands, future) for commands, future in batch if not future.done()]
        if not wanted:
            return
        self.batches += 1
        try:
            async with self._client().pipeline(transaction=False) as pipe:
                for commands, _ in wanted:
                    self.commands += len(commands)
                    for command in commands:
                        pipe.execute_command(*command)
                replies = await pipe.execute(raise_on_error=False)
        except asyncio.CancelledError:
            for _, future in wanted:
                future.cancel()
            raise
        except Exception as exc:
            for _, future in wanted:
                if not future.done():
                    future.set_exception(exc)
            return
        start = 0
        for commands, future in wanted:
            if not future.done():
                future.set_result(replies[start : start + len(commands)])
            start += len(commands)

    async def close(self) -> None:
        """Wait for the batches in flight (their callers are waiting for them too)."""
        if self._flushes:
            await asyncio.gather(*self._flushes, return_exceptions=True)
