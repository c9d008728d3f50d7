"""IAM tokens: one process-wide cache shared by every hook and trigger, safe under threads and
coroutines, refreshed shortly before expiry; behind it the host's token files
(``airflow_provider_ges.token_cache``), then IAM."""

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
from airflow_provider_ges.token_cache import FileTokens, TokenSlot

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


def refresh_point(token: Token) -> datetime:
    """When a token just obtained is due for refresh (``REFRESH_MARGIN``, or a tenth of its life)."""
    lifetime = max(token.expires_at - datetime.now(timezone.utc), timedelta(0))
    return token.expires_at - min(REFRESH_MARGIN, lifetime / 10)


class TokenCache:
    """Tokens by ``TokenKey``, then the host's files (``files``), then IAM. At most one fetch per
    key runs at a time, per thread or event loop, and per host (the files' lock)."""

    def __init__(self) -> None:
        self._entries: dict[TokenKey, _Entry] = {}
        self._lock = threading.Lock()
        self._fetch_locks: dict[TokenKey, threading.Lock] = {}
        self._async_locks: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[TokenKey, asyncio.Lock]
        ] = weakref.WeakKeyDictionary()
        self.files = FileTokens()

    def get(self, key: TokenKey) -> str | None:
        """A cached token not yet due for refresh."""
        entry = self._entries.get(key)
        if entry is None or datetime.now(timezone.utc) >= entry.refresh_at:
            return None
        return entry.token.value

    def put(self, key: TokenKey, token: Token) -> str:
        """Keep a token just obtained from IAM."""
        with self._lock:
            self._entries[key] = _Entry(token, refresh_point(token))
        return token.value

    def discard(self, key: TokenKey, stale: str | None = None) -> None:
        """Forget the token (only if it is still ``stale``, when given: another caller may have
        refreshed it already)."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and (stale is None or entry.token.value == stale):
                del self._entries[key]

    def clear(self, *, files: bool = True) -> None:
        """Forget every token; ``files=False``: this process's only (what a new process sees)."""
        with self._lock:
            self._entries.clear()
        if files:
            self.files.clear()

    def _cached(self, key: TokenKey, stale: str | None) -> str | None:
        if stale is not None:
            self.discard(key, stale)
        return self.get(key)

    def _unwanted(self, key: TokenKey, stale: str | None) -> set[str]:
        """Tokens the file must not give back: the one that got a 401, the one found due here."""
        entry = self._entries.get(key)
        return {value for value in (stale, entry.token.value if entry else None) if value}

    def _settle(self, key: TokenKey, slot: TokenSlot, token: Token) -> str:
        """Keep the file's token, or one just fetched (then written to the file too)."""
        if slot.found is not None and slot.found[0] is token:
            with self._lock:
                self._entries[key] = _Entry(*slot.found)
        else:
            self.put(key, token)
            slot.save(token, self._entries[key].refresh_at)
        return token.value

    def get_or_fetch(
        self,
        config: GesConnectionConfig,
        fetch: Callable[[], Token],
        mask: Callable[[str], None],
        stale: str | None = None,
    ) -> str:
        """The config's token: from memory, else the host's file, else ``fetch`` (IAM). ``mask``
        registers a token new to this process with the secrets masker; ``stale`` got a 401."""
        key = TokenKey.of(config)
        if (value := self._cached(key, stale)) is not None:
            return value
        with self._lock:
            fetch_lock = self._fetch_locks.setdefault(key, threading.Lock())
        with fetch_lock:
            if (value := self.get(key)) is not None:
                return value
            with self.files.slot(config, self._unwanted(key, stale)) as slot:
                token = slot.found[0] if slot.found else fetch()
                mask(token.value)
                return self._settle(key, slot, token)

    async def aget_or_fetch(
        self,
        config: GesConnectionConfig,
        fetch: Callable[[], Awaitable[Token]],
        mask: Callable[[str], Awaitable[None]],
        stale: str | None = None,
    ) -> str:
        """``get_or_fetch`` on the event loop."""
        key = TokenKey.of(config)
        if (value := self._cached(key, stale)) is not None:
            return value
        with self._lock:
            locks = self._async_locks.setdefault(asyncio.get_running_loop(), {})
            fetch_lock = locks.setdefault(key, asyncio.Lock())
        async with fetch_lock:
            if (value := self.get(key)) is not None:
                return value
            async with self.files.aslot(config, self._unwanted(key, stale)) as slot:
                token = slot.found[0] if slot.found else await fetch()
                await mask(token.value)
                return self._settle(key, slot, token)


#: The process-wide cache: many hooks and triggers in one process share one token.
TOKEN_CACHE = TokenCache()
