"""IAM tokens shared by the processes of one host: one private JSON file per credential key.

Every Airflow task try is a new process; without this, a reschedule-mode sensor asks IAM for a
token on every look. The in-memory cache (``auth.TokenCache``) asks here before IAM:

- one file per IAM endpoint, account, user and project, named by their hash, in
  ``$GES_TOKEN_CACHE_DIR`` (default ``$XDG_CACHE_HOME/airflow-provider-ges/tokens``,
  ``~/.cache/...``); the directory 0700, the files 0600, written whole (a temp file, then
  ``os.replace``); the token is served while it is fresh (the memory cache's refresh point);
- the password is never stored: a file serves only a caller with the same password, checked
  against its salted scrypt digest (a changed or wrong password asks IAM, as in memory);
- one process at a time refreshes a key (``flock`` on a lock file beside it); a process that
  waited reads the file again first, and a token that got a 401 is dropped only if the file
  still holds it (else another process refreshed it already: that one is used);
- a symlink is never followed, a directory that group or others may use is refused, and a
  file or directory that cannot be used is ignored with one warning per process, never fatal.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import hmac
import json
import logging
import os
import stat
import tempfile
from collections.abc import AsyncIterator, Iterator, Set
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import AwareDatetime, BaseModel, Field

from airflow_provider_ges.models import Token

if TYPE_CHECKING:
    from airflow_provider_ges.connection import GesConnectionConfig

log = logging.getLogger(__name__)

CACHE_DIR_ENV = "GES_TOKEN_CACHE_DIR"
#: Seconds between an async caller's tries of a lock another process holds.
LOCK_POLL = 0.05
_PRIVATE = 0o077  # group and other permission bits


def cache_dir() -> Path:
    """Where the token files are: ``$GES_TOKEN_CACHE_DIR``, else the user's cache directory."""
    if explicit := os.environ.get(CACHE_DIR_ENV):
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base, "airflow-provider-ges", "tokens")


class _Saved(BaseModel):
    """A token file's content."""

    key: list[str]  # endpoint, account, user, project: for a human reading the directory
    check: str = Field(pattern="^[0-9a-f]{64}$")  # scrypt of the password, salted with the file's name
    token: str = Field(repr=False, min_length=1)
    expires_at: AwareDatetime
    refresh_at: AwareDatetime


class TokenSlot:
    """One credential key's file while this process holds its lock (``path`` None: no file).

    ``found`` is the file's token and refresh point when it serves this caller.
    """

    def __init__(self, files: FileTokens, config: GesConnectionConfig | None, unwanted: Set[str]) -> None:
        self._files, self._unwanted = files, unwanted
        self.found: tuple[Token, datetime] | None = None
        self._check, self._lock_fd = "", -1
        self.path: Path | None = None
        if config is not None:
            self._key = [config.iam_endpoint, config.domain_name or "", config.login, config.project_id]
            self._password = config.password
            name = hashlib.sha256(json.dumps(self._key).encode()).hexdigest()
            if (directory := files.directory()) is not None:
                self.path = directory / f"{name}.json"

    def prepare(self) -> None:
        """The password's check (~35 ms of CPU: before the lock, and off the event loop)."""
        if self.path is not None:
            salt = self.path.name.encode()
            self._check = hashlib.scrypt(
                self._password.encode(), salt=salt, n=2**14, r=8, p=1, dklen=32
            ).hex()

    def lock(self, *, wait: bool) -> bool:
        """Take the key's lock; False while another process holds it (only when not ``wait``)."""
        if self.path is None:
            return True
        lock_path = self.path.with_suffix(".lock")
        try:
            if self._lock_fd < 0:
                self._lock_fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            return False
        except OSError as err:
            self._files.warn(f"cannot lock {lock_path} ({err.strerror})")
            self.path = None
        return True

    def read(self) -> None:
        """Set ``found`` from the file; drop the file's token if it is one the caller has done with."""
        if self.path is None:
            return
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)  # a FIFO never blocks
        except FileNotFoundError:
            return
        except OSError as err:
            self._files.warn(f"ignoring {self.path} ({err.strerror})")
            return
        with os.fdopen(fd, "rb") as file:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & _PRIVATE:
                self._files.warn(f"ignoring {self.path}: not a file of this user with mode 0600")
                return
            try:
                saved = _Saved.model_validate_json(file.read(1 << 16))
            except (OSError, ValueError):  # never the error's text: it may quote the token
                self._files.warn(f"ignoring {self.path}: not a token file (corrupt?)")
                return
        if saved.token in self._unwanted:
            with contextlib.suppress(OSError):
                os.unlink(self.path)
        elif hmac.compare_digest(saved.check, self._check) and datetime.now(timezone.utc) < min(
            saved.refresh_at, saved.expires_at
        ):
            self.found = Token(value=saved.token, expires_at=saved.expires_at), saved.refresh_at

    def save(self, token: Token, refresh_at: datetime) -> None:
        """Write the token for the host's other processes (a temp file, then ``os.replace``)."""
        if self.path is None:
            return
        saved = _Saved(
            key=self._key,
            check=self._check,
            token=token.value,
            expires_at=token.expires_at,
            refresh_at=refresh_at,
        )
        temp = None
        try:
            fd, temp = tempfile.mkstemp(dir=self.path.parent, prefix=".", suffix=".tmp")  # 0600
            with os.fdopen(fd, "w") as file:
                file.write(saved.model_dump_json())
            os.replace(temp, self.path)  # replaces a symlink itself, never its target
        except OSError as err:
            self._files.warn(f"cannot write {self.path} ({err.strerror})")
            if temp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(temp)

    def close(self) -> None:
        """Release the lock."""
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1


class FileTokens:
    """The host's token files. A problem warns once per process and falls back to memory and IAM."""

    def __init__(self) -> None:
        self.warned = False

    def warn(self, problem: str) -> None:
        if not self.warned:
            self.warned = True
            log.warning("IAM token file cache: %s; asking IAM instead (said once per process)", problem)

    def directory(self) -> Path | None:
        """The cache directory, made if missing; None if it is not private to this user."""
        try:
            path = cache_dir()
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
            info = path.lstat()
        except (OSError, RuntimeError) as err:  # RuntimeError: no home directory
            self.warn(f"cannot use the cache directory ({err})")
            return None
        if not stat.S_ISDIR(info.st_mode):
            self.warn(f"{path} is not a directory (a symlink is not followed)")
        elif info.st_uid != os.geteuid():
            self.warn(f"{path} belongs to another user")
        elif info.st_mode & _PRIVATE:
            self.warn(f"{path} is open to group or others (mode {info.st_mode & 0o777:o}; chmod 700 it)")
        else:
            return path
        return None

    def _slot(self, config: GesConnectionConfig, unwanted: Set[str]) -> TokenSlot:
        return TokenSlot(self, config if config.iam_cache else None, unwanted)

    @contextlib.contextmanager
    def slot(self, config: GesConnectionConfig, unwanted: Set[str]) -> Iterator[TokenSlot]:
        """The key's file, locked: ``unwanted`` tokens (one that got a 401) are never served."""
        slot = self._slot(config, unwanted)
        try:
            slot.prepare()
            slot.lock(wait=True)
            slot.read()
            yield slot
        finally:
            slot.close()

    @contextlib.asynccontextmanager
    async def aslot(self, config: GesConnectionConfig, unwanted: Set[str]) -> AsyncIterator[TokenSlot]:
        """``slot`` for the event loop: the check in a thread, the lock polled (a cancelled
        caller leaves no thread holding it), the small file reads and writes inline."""
        slot = self._slot(config, unwanted)
        try:
            await asyncio.to_thread(slot.prepare)
            while not slot.lock(wait=False):
                await asyncio.sleep(LOCK_POLL)
            slot.read()
            yield slot
        finally:
            slot.close()

    def clear(self) -> None:
        """Delete the token files (tests: a host with no token yet)."""
        for path in cache_dir().glob("*.json"):
            with contextlib.suppress(OSError):
                path.unlink()
