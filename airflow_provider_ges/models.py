"""Pydantic v2 models of the GES wire format: liberal in what they accept, typed for the rest."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any

from pydantic import (
    AliasChoices,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    field_serializer,
    field_validator,
)

from airflow_provider_ges.enums import BackupMethod, BackupStatus, choice
from airflow_provider_ges.times import to_utc

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_EARLIEST = datetime.min.replace(tzinfo=timezone.utc)
_ONE_MS = timedelta(milliseconds=1)


def datetime_to_ms(value: datetime) -> int:
    """The API's millisecond timestamp of an aware datetime."""
    return (value - EPOCH) // _ONE_MS


# GES sends some codes as numbers ("graphStatus": 200), some as text: keep them as text
CodeText = Annotated[str, Field(coerce_numbers_to_str=True)]


class Backup(BaseModel):
    """One backup as ``GET .../graphs/backups`` returns it.

    ``start_time``/``end_time`` come from the millisecond timestamps (the truth), falling back to
    the zone-less UTC ``startTime``/``endTime`` strings. ``model_dump(mode="json", by_alias=True)``
    gives back the API's own field names.
    """

    # pydantic-core reads the ms timestamps itself (no Python validator per backup: the hot path)
    model_config = ConfigDict(
        extra="allow", populate_by_name=True, frozen=True, val_temporal_unit="milliseconds"
    )

    id: str = Field(min_length=1)
    name: str | None = None
    backup_method: BackupMethod | str | None = Field(default=None, alias="backupMethod")
    graph_id: str | None = Field(default=None, alias="graphId")
    graph_name: str | None = Field(
        default=None,
        validation_alias=AliasChoices("graph_name", "graphName"),
        serialization_alias="graph_name",
    )
    graph_status: CodeText | None = Field(default=None, alias="graphStatus")
    graph_size_type_index: CodeText | None = Field(default=None, alias="graphSizeTypeIndex")
    data_store_version: str | None = Field(default=None, alias="dataStoreVersion")
    arch: str | None = None
    status: BackupStatus | str | None = None
    start_time: AwareDatetime | None = Field(default=None, alias="startTimestamp")
    start_time_text: str | None = Field(default=None, alias="startTime")
    end_time: AwareDatetime | None = Field(default=None, alias="endTimestamp")
    end_time_text: str | None = Field(default=None, alias="endTime")
    size: int | None = None
    duration: int | None = None
    encrypted: bool | None = None

    @field_serializer("start_time", "end_time")
    def _to_ms(self, value: datetime | None) -> int | None:
        return None if value is None else datetime_to_ms(value)

    def model_post_init(self, context: Any, /) -> None:
        """Fill missing timestamps from the zone-less UTC text fields."""
        for attr, text in (("start_time", self.start_time_text), ("end_time", self.end_time_text)):
            if getattr(self, attr) is None and text:
                # a garbled text time is kept as text; the timestamp stays unknown
                with contextlib.suppress(ValueError):
                    object.__setattr__(self, attr, to_utc(text))

    @property
    def is_success(self) -> bool:
        return self.status == BackupStatus.SUCCESS

    @property
    def is_failed(self) -> bool:
        return self.status == BackupStatus.FAILED

    def to_api(self) -> dict[str, Any]:
        """The backup as the API spells it (fields it did not send left out): the form for XCom."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class BackupPage(BaseModel):
    """One page of a backup listing (v1 camelCase or v2 snake_case keys)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, frozen=True)

    backup_count: int | None = Field(
        default=None, validation_alias=AliasChoices("backupCount", "backup_count"), ge=0
    )
    # As sent (None for a null or missing list). No Python validator on it: one would make
    # pydantic-core turn the whole JSON list into Python objects before validating it (~40% slower).
    backup_list: list[Backup] | None = Field(
        default=None, validation_alias=AliasChoices("backupList", "backup_list")
    )

    @property
    def items(self) -> list[Backup]:
        """The page's backups (empty when the server sent none or null)."""
        return self.backup_list or []

    @property
    def total(self) -> int | None:
        return self.backup_count


class Graph(BaseModel):
    """One graph as ``GET /v1.0/{project_id}/graphs`` lists it (the fields used here; the rest kept)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    id: str = Field(min_length=1)
    name: str | None = None
    status: CodeText | None = None


class GraphPage(BaseModel):
    """One page of the graph list."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, frozen=True)

    graph_count: int | None = Field(
        default=None, validation_alias=AliasChoices("graphCount", "graph_count"), ge=0
    )
    graphs: list[Graph] | None = None

    @property
    def items(self) -> list[Graph]:
        return self.graphs or []

    @property
    def total(self) -> int | None:
        return self.graph_count


class Token(BaseModel):
    """An IAM token and when it stops working. The value never shows in a repr."""

    model_config = ConfigDict(frozen=True)

    value: str = Field(repr=False, min_length=1)
    expires_at: datetime

    @field_validator("expires_at", mode="before")
    @classmethod
    def _aware(cls, value: Any) -> datetime:
        return to_utc(value)


def sort_newest_first(backups: Iterable[Backup]) -> list[Backup]:
    """Backups by start time, newest first; those without a start time last."""
    return sorted(backups, key=lambda b: b.start_time or _EARLIEST, reverse=True)


class BackupFilter(BaseModel):
    """Which backups a caller wants. Unset criteria match everything.

    ``newer_than`` keeps backups that started at or after it (a backup with no start time never
    matches it).
    """

    model_config = ConfigDict(frozen=True)

    graph_id: str | None = None
    graph_name: str | None = None
    status: BackupStatus | str | None = None
    backup_method: BackupMethod | str | None = None
    newer_than: datetime | None = None

    @field_validator("newer_than", mode="before")
    @classmethod
    def _utc(cls, value: Any) -> datetime | None:
        return None if value is None or value == "" else to_utc(value)

    @classmethod
    def of(cls, **criteria: Any) -> BackupFilter:
        """A filter from user input: an unknown status or method is a ``ValueError`` naming the
        valid ones (``status="sucess"`` would match nothing), a bad time one naming the field."""
        criteria["status"] = choice("status", criteria.get("status"), BackupStatus)
        criteria["backup_method"] = choice("backup_method", criteria.get("backup_method"), BackupMethod)
        try:
            criteria["newer_than"] = cls._utc(criteria.get("newer_than"))
        except ValueError as err:
            raise ValueError(f"newer_than: {err}") from None
        return cls(**criteria)

    def matches(self, backup: Backup) -> bool:
        return (
            (self.graph_id is None or backup.graph_id == self.graph_id)
            and (self.graph_name is None or backup.graph_name == self.graph_name)
            and (self.status is None or backup.status == self.status)
            and (self.backup_method is None or backup.backup_method == self.backup_method)
            and (
                self.newer_than is None
                or (backup.start_time is not None and backup.start_time >= self.newer_than)
            )
        )

    def select(self, backups: Iterable[Backup]) -> list[Backup]:
        """The matching backups, newest first."""
        return sort_newest_first(b for b in backups if self.matches(b))
