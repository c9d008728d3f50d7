"""Listings shared by the triggers of one triggerer: one request for many waiters.

Deferred sensors that wait on the same graph through the same connection (endpoint, project,
credentials) share one listing per poll: a waiter reuses the last result while it is younger
than its own ``poll_interval``, and joins a listing already in flight. An error reaches every
waiter of that listing, each handling it as its own (a transient error is waited out, never a
pass). Process-local: works on every Airflow version.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any

#: Results unused this long are dropped.
FORGET_AFTER = 900.0


@dataclass
class _Entry:
    fetched_at: float
    future: asyncio.Future[Any]


class SharedResults:
    """Results by key, one fetch at a time per key, per event loop."""

    def __init__(self) -> None:
        self._entries: dict[tuple[int, Hashable], _Entry] = {}
        self.fetches = 0  # how many fetches ran (for tests and benchmarks)

    async def get(self, key: Hashable, fresh_for: float, fetch: Callable[[], Awaitable[Any]]) -> Any:
        """The result for ``key``: a finished one younger than ``fresh_for`` seconds, the one in
        flight, or a new fetch (run by this caller). A waiter whose fetcher was cancelled (its
        trigger ended) fetches anew instead of taking the cancellation for its own."""
        loop = asyncio.get_running_loop()
        full_key = (id(loop), key)
        while True:
            now = time.monotonic()
            entry = self._entries.get(full_key)
            if entry is None or (entry.future.done() and now - entry.fetched_at >= fresh_for):
                return await self._fetch(full_key, now, loop, fetch)
            # asyncio.wait, not shield: a CancelledError here is this waiter's own cancellation
            # (the triggerer cancelling its trigger), never the fetcher's
            await asyncio.wait((entry.future,))
            if not entry.future.cancelled():
                return entry.future.result()
            # the fetcher was cancelled: look again

    async def _fetch(
        self,
        key: tuple[int, Hashable],
        now: float,
        loop: asyncio.AbstractEventLoop,
        fetch: Callable[[], Awaitable[Any]],
    ) -> Any:
        self._forget_old(now)
        entry = _Entry(now, loop.create_future())
        self._entries[key] = entry
        self.fetches += 1
        try:
            result = await fetch()
        except asyncio.CancelledError:
            entry.future.cancel()
            if self._entries.get(key) is entry:
                del self._entries[key]
            raise
        except BaseException as err:
            entry.future.set_exception(err)
            entry.future.exception()  # retrieved: no "never retrieved" warning if no one else waits
            entry.fetched_at = 0.0  # an error is not kept: the next look fetches again
            raise
        entry.future.set_result(result)
        return result

    def _forget_old(self, now: float) -> None:
        for key in [
            k for k, e in self._entries.items() if e.future.done() and now - e.fetched_at > FORGET_AFTER
        ]:
            del self._entries[key]

    def clear(self) -> None:
        self._entries.clear()


#: The triggerer's shared listings.
SHARED = SharedResults()
