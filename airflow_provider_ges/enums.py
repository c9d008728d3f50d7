"""The API's vocabularies (backup status, backup method), free of pydantic for cheap DAG parsing."""

from __future__ import annotations

from enum import Enum
from typing import TypeVar

E = TypeVar("E", bound=Enum)


class _Text(str, Enum):
    def __str__(self) -> str:
        return str(self.value)


class BackupStatus(_Text):
    """The backup states GES documents. Unknown states are kept as plain strings."""

    BACKING_UP = "backing_up"
    SUCCESS = "success"
    FAILED = "failed"


class BackupMethod(_Text):
    """How a backup was made. Unknown methods are kept as plain strings."""

    AUTO = "auto"
    MANUAL = "manual"
    IMPORT = "import"


def choice(name: str, value: str | E | None, kind: type[E]) -> E | None:
    """``value`` as a member of ``kind`` (None stays None); a ``ValueError`` listing the valid ones
    otherwise, so that ``status="sucess"`` fails at once instead of matching nothing."""
    if value is None or value == "":
        return None
    try:
        return kind(value)
    except ValueError:
        valid = ", ".join(repr(m.value) for m in kind)
        raise ValueError(f"{name} must be one of {valid} or None, got {value!r}") from None
