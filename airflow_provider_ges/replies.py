"""Replies: error bodies (GES, API gateway, IAM) mapped to ``GesApiError`` kinds, pages parsed."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from airflow_provider_ges.endpoints import Request
from airflow_provider_ges.exceptions import (
    GesApiError,
    GesAuthError,
    GesNotFoundError,
    GesTransientError,
)
from airflow_provider_ges.models import Token

ModelT = TypeVar("ModelT", bound=BaseModel)

TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
TRANSIENT_GES_CODES = frozenset({"GES.7002", "GES.7005", "GES.7006"})
NOT_FOUND_GES_CODES = frozenset({"GES.0016", "GES.7000", "GES.7024", "GES.8301"})


@dataclass(frozen=True)
class Response:
    """What came back, transport-neutral."""

    status_code: int
    headers: Mapping[str, str]
    content: bytes


def retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` as seconds (delta-seconds or an HTTP date); None when absent or garbled."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:  # "nan", "inf", "1e999": garbled, not a wait
        return max(0.0, seconds) if math.isfinite(seconds) else None
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
        return _text(err.get("code"), 100), _text(err.get("message"))
    for code_key, msg_key in (("errorCode", "errorMessage"), ("error_code", "error_msg")):
        if body.get(code_key) or body.get(msg_key):
            return _text(body.get(code_key), 100), _text(body.get(msg_key))
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
    if 200 <= status < 300 and b'"error' not in response.content:
        return  # no error field can be in there: skip a second parse of a whole page
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


def parse_json(model: type[ModelT], request: Request, response: Response) -> ModelT:
    """The reply's JSON body as ``model`` (error replies raised; use with ``functools.partial``)."""
    raise_for_error(request, response)
    try:
        return model.model_validate_json(response.content)
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
