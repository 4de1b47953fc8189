"""Per-provider concurrency limit and pacing, shared by every transfer and request to that provider."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class ProviderLimiter:
    """At most ``concurrency`` operations at once, and starts at least ``min_interval_s`` apart."""

    def __init__(self, concurrency: int = 4, min_interval_s: float = 0.0) -> None:
        self._semaphore = asyncio.Semaphore(concurrency)
        self._min_interval_s = min_interval_s
        self._next_start = 0.0
        self._pace_lock = asyncio.Lock()

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        async with self._semaphore:
            if self._min_interval_s > 0:
                async with self._pace_lock:
                    now = time.monotonic()
                    wait = self._next_start - now
                    if wait > 0:
                        await asyncio.sleep(wait)
                    self._next_start = max(now, self._next_start) + self._min_interval_s
            yield


class Limiters:
    """One limiter per provider id, created on first use with the configured concurrency."""

    def __init__(self, concurrency: int = 4, intervals: dict[str, float] | None = None) -> None:
        self._concurrency = concurrency
        self._intervals = intervals or {}
        self._limiters: dict[str, ProviderLimiter] = {}

    def for_provider(self, provider_id: str) -> ProviderLimiter:
        limiter = self._limiters.get(provider_id)
        if limiter is None:
            limiter = ProviderLimiter(self._concurrency, self._intervals.get(provider_id, 0.0))
            self._limiters[provider_id] = limiter
        return limiter
