"""Times given by users: parsed to aware UTC datetimes, checked early (free of pydantic: DAG files
import this at parse time)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any


def to_utc(value: Any) -> datetime:
    """An aware UTC datetime from a datetime or ISO-8601 string; naive values are taken as UTC."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"expected an ISO-8601 date-time, got {value!r}") from None
    if not isinstance(value, datetime):
        raise ValueError(f"expected a date-time, got {value!r}")
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    try:
        return value.astimezone(timezone.utc)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00: before datetime.min in UTC
        raise ValueError(f"date-time {value.isoformat()!r} is out of range in UTC") from None


def check_time(name: str, value: datetime | str | None) -> None:
    """Refuse a time that is neither a datetime, an ISO-8601 string nor a template, at once."""
    if isinstance(value, str) and "{{" not in value and value.strip():
        try:
            to_utc(value)
        except ValueError as err:
            raise ValueError(f"{name}: {err}") from None
    elif value is not None and not isinstance(value, (str, datetime)):
        raise ValueError(f"{name} must be a datetime or an ISO-8601 string, got {value!r}")
