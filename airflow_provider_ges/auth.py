"""IAM tokens: one process-wide cache shared by every hook and trigger, safe under threads and
coroutines, refreshed shortly before expiry."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import threading
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from airflow_provider_ges.connection import GesConnectionConfig
from airflow_provider_ges.models import Token

#: Refresh this long before expiry at most (a tenth of the lifetime for short-lived tokens).
REFRESH_MARGIN = timedelta(minutes=5)


#: Keys the password digests in token cache keys; new each process, so a digest is no password hash.
_DIGEST_KEY = os.urandom(32)


@dataclass(frozen=True)
class TokenKey:
    """Who a token is for: one token serves every caller with the same key.

    The password's keyed digest is part of the key: a changed (or wrong) password never reuses a
    token that the right one obtained.
    """

    iam_endpoint: str
    domain_name: str
    user: str
    project_id: str
    password_digest: str = field(repr=False)

    @classmethod
    def of(cls, config: GesConnectionConfig) -> TokenKey:
        digest = hmac.new(_DIGEST_KEY, config.password.encode(), hashlib.sha256).hexdigest()
        return cls(config.iam_endpoint, config.domain_name or "", config.login, config.project_id, digest)


@dataclass(frozen=True)
class _Entry:
    token: Token
    refresh_at: datetime


class TokenCache:
    """Tokens by ``TokenKey``. At most one fetch per key runs at a time, per thread or event loop."""

    def __init__(self) -> None:
        self._entries: dict[TokenKey, _Entry] = {}
        self._lock = threading.Lock()
        self._fetch_locks: dict[TokenKey, threading.Lock] = {}
        self._async_locks: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[TokenKey, asyncio.Lock]
        ] = weakref.WeakKeyDictionary()

    def get(self, key: TokenKey) -> str | None:
        """A cached token not yet due for refresh."""
        entry = self._entries.get(key)
        if entry is None or datetime.now(timezone.utc) >= entry.refresh_at:
            return None
        return entry.token.value

    def put(self, key: TokenKey, token: Token) -> str:
        now = datetime.now(timezone.utc)
        margin = min(REFRESH_MARGIN, max(token.expires_at - now, timedelta(0)) / 10)
        with self._lock:
            self._entries[key] = _Entry(token, token.expires_at - margin)
        return token.value

    def discard(self, key: TokenKey, stale: str | None = None) -> None:
        """Forget the token (only if it is still ``stale``, when given: another caller may have
        refreshed it already)."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and (stale is None or entry.token.value == stale):
                del self._entries[key]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def get_or_fetch(self, key: TokenKey, fetch: Callable[[], Token], stale: str | None = None) -> str:
        if stale is not None:
            self.discard(key, stale)
        if (value := self.get(key)) is not None:
            return value
        with self._lock:
            fetch_lock = self._fetch_locks.setdefault(key, threading.Lock())
        with fetch_lock:
            if (value := self.get(key)) is not None:
                return value
            return self.put(key, fetch())

    async def aget_or_fetch(
        self, key: TokenKey, fetch: Callable[[], Awaitable[Token]], stale: str | None = None
    ) -> str:
        if stale is not None:
            self.discard(key, stale)
        if (value := self.get(key)) is not None:
            return value
        with self._lock:
            locks = self._async_locks.setdefault(asyncio.get_running_loop(), {})
            fetch_lock = locks.setdefault(key, asyncio.Lock())
        async with fetch_lock:
            if (value := self.get(key)) is not None:
                return value
            return self.put(key, await fetch())


#: The process-wide cache: many hooks and triggers in one process share one token.
TOKEN_CACHE = TokenCache()
