"""The one wire layer: requests built, replies parsed and errors mapped, for sync and async alike.

Nothing here does I/O. A call is a *plan*: a generator that yields effects (``Send`` a request,
``Sleep``, ``NeedToken``) and is resumed with their results. ``drive_sync`` (requests) and
``drive_async`` (httpx) run the same plans, so retry, back-off and token refresh exist once.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Awaitable, Callable, Generator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar
from urllib.parse import urlencode

from pydantic import ValidationError

from airflow_provider_ges.connection import GesConnectionConfig
from airflow_provider_ges.exceptions import (
    GesApiError,
    GesAuthError,
    GesNotFoundError,
    GesTransientError,
)
from airflow_provider_ges.models import Backup, BackupPage, Token

T = TypeVar("T")

TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
TRANSIENT_GES_CODES = frozenset({"GES.7002", "GES.7005", "GES.7006"})
NOT_FOUND_GES_CODES = frozenset({"GES.0016", "GES.7000", "GES.7024", "GES.8301"})
_SAFE_PATH_PARAM = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")
_MAX_PAGES_SLACK = 5


def check_path_param(name: str, value: str) -> str:
    """Refuse a path parameter that could change the URL (``/``, ``..``, ``%``, ``?``, spaces...)."""
    if not isinstance(value, str) or not _SAFE_PATH_PARAM.fullmatch(value):
        raise ValueError(
            f"{name} must be 1-128 letters, digits, '_', '-' or '.' starting with a letter or digit,"
            f" got {value!r}"
        )
    return value


@dataclass(frozen=True)
class Request:
    """An HTTP request, before auth headers are added."""

    method: str
    base_url: str
    path: str
    params: Mapping[str, str | int] = field(default_factory=dict)
    json_body: Any = None

    @property
    def url(self) -> str:
        """The URL exactly as sent (and, with AK/SK, as signed), query included."""
        query = urlencode(self.params)
        return f"{self.base_url}{self.path}?{query}" if query else self.base_url + self.path

    @property
    def body(self) -> bytes:
        return b"" if self.json_body is None else json.dumps(self.json_body).encode()

    @property
    def headers(self) -> dict[str, str]:
        """The content headers the body needs (auth headers come separately)."""
        return {"Content-Type": "application/json"} if self.json_body is not None else {}


@dataclass(frozen=True)
class Response:
    """What came back, transport-neutral."""

    status_code: int
    headers: Mapping[str, str]
    content: bytes


# --- effects a plan yields -------------------------------------------------------------------


@dataclass(frozen=True)
class Send:
    """Send this request with these headers; resume with a ``Response`` (or a thrown error)."""

    request: Request
    headers: Mapping[str, str]


@dataclass(frozen=True)
class Sleep:
    """Wait before a retry; ``reason`` is the error being retried (for the log)."""

    seconds: float
    reason: GesApiError


@dataclass(frozen=True)
class NeedToken:
    """Resume with the auth headers for a request; ``stale`` is a token the server refused."""

    request: Request
    stale: str | None = None


Effect = Send | Sleep | NeedToken
Plan = Generator[Effect, Any, T]


# --- requests ---------------------------------------------------------------------------------


def token_request(config: GesConnectionConfig) -> Request:
    """IAM password auth scoped to the connection's project."""
    body = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {
                        "name": config.login,
                        "password": config.password,
                        "domain": {"name": config.domain_name},
                    }
                },
            },
            "scope": {"project": {"id": config.project_id}},
        }
    }
    return Request("POST", config.iam_endpoint, "/v3/auth/tokens", {"nocatalog": "true"}, body)


def list_backups_request(
    config: GesConnectionConfig, graph_id: str | None, offset: int, limit: int
) -> Request:
    """``GET /v1.0/{project_id}/graphs[/{graph_id}]/backups?offset=&limit=``."""
    project = check_path_param("project_id", config.project_id)
    graph = "" if graph_id is None else "/" + check_path_param("graph_id", graph_id)
    path = f"/v1.0/{project}/graphs{graph}/backups"
    return Request("GET", config.endpoint, path, {"offset": offset, "limit": limit})


# --- replies ----------------------------------------------------------------------------------


def retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` as seconds (delta-seconds or an HTTP date); None when absent or garbled."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def _error_fields(body: Any) -> tuple[str | None, str | None]:
    """(code, message) from a GES, API gateway or IAM error body, whichever came back."""
    if not isinstance(body, dict):
        return None, None
    if isinstance(body.get("error"), dict):  # IAM
        err = body["error"]
        code = err.get("code")
        return (None if code is None else str(code)), _text(err.get("message"))
    for code_key, msg_key in (("errorCode", "errorMessage"), ("error_code", "error_msg")):
        if body.get(code_key) or body.get(msg_key):
            code = body.get(code_key)
            return (None if code is None else str(code)), _text(body.get(msg_key))
    return None, None


def _text(value: Any, limit: int = 500) -> str | None:
    return None if value is None else str(value)[:limit]


def _json(content: bytes) -> Any:
    try:
        return json.loads(content)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None


def raise_for_error(request: Request, response: Response) -> None:
    """Map an error reply to the right ``GesApiError``; a 2xx without an error code passes."""
    status = response.status_code
    body = _json(response.content) if response.content else None
    code, message = _error_fields(body)
    if 200 <= status < 300 and not code:
        return
    kind: type[GesApiError] = GesApiError
    if status in TRANSIENT_STATUS or code in TRANSIENT_GES_CODES:
        kind = GesTransientError
    elif status in (401, 403):
        kind = GesAuthError
    elif status == 404 or code in NOT_FOUND_GES_CODES:
        kind = GesNotFoundError
    raise kind(
        "a non-JSON reply" if body is None and response.content else "no error message in the reply",
        status_code=status,
        error_code=code,
        error_message=message,
        method=request.method,
        path=request.path,
        retry_after=retry_after_seconds(response.headers.get("Retry-After")),
    )


def _garbled(request: Request, response: Response, what: str) -> GesTransientError:
    return GesTransientError(
        f"unexpected reply: {what}",
        status_code=response.status_code,
        method=request.method,
        path=request.path,
    )


def parse_backup_page(request: Request, response: Response) -> BackupPage:
    raise_for_error(request, response)
    try:
        return BackupPage.model_validate_json(response.content)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise _garbled(request, response, f"{where}: {first['msg']}") from None


def parse_token(request: Request, response: Response) -> Token:
    raise_for_error(request, response)
    value = response.headers.get("X-Subject-Token")
    body = _json(response.content)
    token = body.get("token") if isinstance(body, dict) else None
    expires = token.get("expires_at") if isinstance(token, dict) else None
    if response.status_code != 201 or not value or expires is None:
        raise _garbled(request, response, "expected 201 with X-Subject-Token and token.expires_at")
    try:
        return Token(value=value, expires_at=expires)
    except ValidationError:
        raise _garbled(request, response, f"token.expires_at is not a date-time: {expires!r}") from None


# --- retries ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential back-off with full jitter; ``Retry-After`` wins when the server sends it."""

    max_retries: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0

    def delay(self, attempt: int, error: GesApiError) -> float | None:
        """Seconds to wait before retry number ``attempt + 1``, or None to give up."""
        if not error.transient or attempt >= self.max_retries:
            return None
        if error.retry_after is not None:
            return min(error.retry_after, self.max_delay)
        return random.uniform(0, min(self.max_delay, self.base_delay * 2**attempt))


def call(
    request: Request,
    parse: Callable[[Request, Response], T],
    policy: RetryPolicy,
    *,
    authenticated: bool = True,
) -> Plan[T]:
    """The plan of one API call: auth, send, parse, retry transient errors, refresh a refused token."""
    attempt = 0
    stale: str | None = None
    refreshed = False
    while True:
        headers: Mapping[str, str] = (yield NeedToken(request, stale)) if authenticated else {}
        stale = None
        try:
            response = yield Send(request, headers)
            return parse(request, response)
        except GesAuthError as err:
            token = headers.get("X-Auth-Token")
            if err.status_code != 401 or refreshed or token is None:
                raise
            refreshed, stale = True, token
        except GesApiError as err:
            wait = policy.delay(attempt, err)
            if wait is None:
                raise
            attempt += 1
            yield Sleep(wait, err)


# --- pagination -------------------------------------------------------------------------------


class BackupPager:
    """Offset/limit paging that ends, and yields each backup id once.

    Ends on an empty page, on a short page when the total is unknown or reached, or when the
    total (``backupCount``) is reached. The offset moves by the items received (a server may
    return fewer than asked). A server that ignores ``offset`` (the first page again) or a listing
    that keeps growing past twice its first size is an error, never a hang or a silent cut.
    """

    def __init__(self, page_size: int) -> None:
        if not isinstance(page_size, int) or page_size < 1:
            raise ValueError(f"page_size must be a positive integer, got {page_size!r}")
        self.page_size = page_size
        self.offset: int | None = 0
        self.pages = 0
        self._seen: set[str] = set()
        self._first_ids: list[str] = []
        self._max_pages = 0

    def feed(self, page: BackupPage) -> list[Backup]:
        """Take one page; return its backups not seen before and move the offset (None: done)."""
        assert self.offset is not None, "the listing has ended"
        items, total = page.backup_list, page.backup_count
        ids = [b.id for b in items]
        self.pages += 1
        if self.pages == 1:
            self._first_ids = ids
            self._max_pages = -(-2 * max(total or 0, len(items)) // self.page_size) + _MAX_PAGES_SLACK
        elif ids and ids == self._first_ids:
            raise GesApiError(
                f"the server returned the first page again for offset {self.offset}: it ignores"
                " 'offset', so the listing cannot be completed"
            )
        fresh = [b for b in items if b.id not in self._seen]
        self._seen.update(b.id for b in fresh)
        self.offset += len(items)
        reached = total is not None and self.offset >= total
        if not items or reached or (len(items) < self.page_size and total is None):
            self.offset = None
        elif self.pages >= self._max_pages:
            raise GesApiError(
                f"the backup listing did not end after {self.pages} pages of {self.page_size}"
                f" (backupCount now {total}): the server keeps reporting more"
            )
        return fresh


# --- drivers ----------------------------------------------------------------------------------


def drive_sync(
    plan: Plan[T],
    send: Callable[[Send], Response],
    auth: Callable[[NeedToken], Mapping[str, str]],
    sleep: Callable[[Sleep], None],
) -> T:
    """Run a plan with blocking I/O."""
    result: Any = None
    error: BaseException | None = None
    while True:
        try:
            effect = plan.throw(error) if error else plan.send(result)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        result, error = None, None
        try:
            if isinstance(effect, Send):
                result = send(effect)
            elif isinstance(effect, NeedToken):
                result = auth(effect)
            else:
                sleep(effect)
        except GesApiError as exc:
            error = exc


async def drive_async(
    plan: Plan[T],
    send: Callable[[Send], Awaitable[Response]],
    auth: Callable[[NeedToken], Awaitable[Mapping[str, str]]],
    sleep: Callable[[Sleep], Awaitable[None]],
) -> T:
    """Run a plan on the event loop (never blocks it)."""
    result: Any = None
    error: BaseException | None = None
    while True:
        try:
            effect = plan.throw(error) if error else plan.send(result)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        result, error = None, None
        try:
            if isinstance(effect, Send):
                result = await send(effect)
            elif isinstance(effect, NeedToken):
                result = await auth(effect)
            else:
                await sleep(effect)
        except GesApiError as exc:
            error = exc
