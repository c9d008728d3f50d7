"""Pydantic v2 models of the GES wire format: liberal in what they accept, typed for the rest."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from enum import Enum
from typing import Annotated, Any, ClassVar

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


def _wire(v1: str, v2: str) -> Any:
    """A field read from its v1 (camelCase) or v2 (snake_case) key, written back under the v1 one."""
    return Field(default=None, validation_alias=AliasChoices(v1, v2), serialization_alias=v1)


class Backup(BaseModel):
    """One backup as ``GET .../graphs/backups`` returns it.

    ``start_time``/``end_time`` come from the millisecond timestamps (the truth), falling back to
    the zone-less UTC ``startTime``/``endTime`` strings. ``model_dump(mode="json", by_alias=True)``
    gives back the API's own field names.
    """

    # pydantic-core reads the ms timestamps itself (no Python validator per backup: the hot path).
    # Not by field name: v2's text ``start_time`` must not fill the ``start_time`` timestamp field.
    model_config = ConfigDict(
        extra="allow",
        validate_by_name=False,
        validate_by_alias=True,
        serialize_by_alias=False,
        frozen=True,
        val_temporal_unit="milliseconds",
    )

    id: str = Field(min_length=1)
    name: str | None = None
    backup_method: BackupMethod | str | None = _wire("backupMethod", "backup_method")
    graph_id: str | None = _wire("graphId", "graph_id")
    graph_name: str | None = Field(
        default=None,
        validation_alias=AliasChoices("graph_name", "graphName"),
        serialization_alias="graph_name",
    )
    graph_status: CodeText | None = _wire("graphStatus", "graph_status")
    graph_size_type_index: CodeText | None = _wire("graphSizeTypeIndex", "graph_size_type_index")
    data_store_version: str | None = _wire("dataStoreVersion", "data_store_version")
    arch: str | None = None
    status: BackupStatus | str | None = None
    start_time: AwareDatetime | None = _wire("startTimestamp", "start_timestamp")
    start_time_text: str | None = _wire("startTime", "start_time")
    end_time: AwareDatetime | None = _wire("endTimestamp", "end_timestamp")
    end_time_text: str | None = _wire("endTime", "end_time")
    size: int | None = None
    duration: int | None = None
    encrypted: bool | None = None

    @field_serializer("start_time", "end_time")
    def _to_ms(self, value: datetime | None) -> int | None:
        return None if value is None else datetime_to_ms(value)

    def model_post_init(self, context: Any, /) -> None:
        """Fill missing timestamps from the zone-less UTC text fields."""
        if self.start_time is None or self.end_time is None:  # the hot path: one test per backup
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
    """One page of a backup listing (v1 camelCase or v2 snake_case keys, in the page and its items)."""

    # ids, names and times are unique per backup: caching only the keys parses a page ~4% faster
    model_config = ConfigDict(extra="allow", populate_by_name=True, frozen=True, cache_strings="keys")

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
        if self == _ANY:
            return sort_newest_first(backups)
        return sort_newest_first(b for b in backups if self.matches(b))


class GraphStatus:
    """The graph status codes (GES sends them as numbers or text), each in one ``kind``."""

    RUNNING = "200"
    DELETED = "400"
    STOPPED = "900"
    STOPPING = "901"
    BACKING_UP = "903"
    STARTING = "920"
    #: The SDK's list (100, 200, 201-208, 210, 211, 300, 303, 400, 800, 900, 901, 920) and 903
    #: (backing up, from the GES.7002 page), by what the lifecycle does with a graph in them.
    KINDS: ClassVar[dict[str, str]] = {
        "200": "running",
        "900": "stopped",
        # preparing, upgrading, importing, rolling back, exporting, clearing, scale-out (206-208),
        # resizing (210, 211), stopping, backing up, starting: a graph leaves them by itself
        **dict.fromkeys(
            (
                "100",
                "201",
                "202",
                "203",
                "204",
                "205",
                "206",
                "207",
                "208",
                "210",
                "211",
                "901",
                "903",
                "920",
            ),
            "transitional",
        ),
        "300": "faulty",  # faulty
        "303": "faulty",  # creation failed
        "800": "faulty",  # frozen
        "400": "deleted",
    }
    #: States a graph leaves by itself: wait for them to end.
    TRANSIENT = frozenset(code for code, kind in KINDS.items() if kind == "transitional")

    @classmethod
    def kind(cls, status: object) -> str:
        """``running``, ``stopped``, ``transitional``, ``faulty``, ``deleted`` or ``unknown``."""
        return cls.KINDS.get(str(status), "unknown")


class GraphReply(BaseModel):
    """``GET /v1.0/{project_id}/graphs/{graph_id}``: ``{"graph": {...}}`` (the SDK's ShowGraphResponse)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    graph: Graph


class JobStatus(str, Enum):
    """The job states GES documents; ``success`` and ``failed`` are terminal. Unknown states are
    kept as plain strings."""

    PENDING = "pending"
    WAITING = "waiting"  # the SDK's ListJobs: running, waiting, success, failed
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"

    def __str__(self) -> str:
        return str(self.value)


TERMINAL_JOB_STATES = frozenset({JobStatus.SUCCESS, JobStatus.FAILED})
DOCUMENTED_JOB_STATES = frozenset(JobStatus)
WAITING_JOB_STATES = frozenset({JobStatus.PENDING, JobStatus.WAITING, JobStatus.RUNNING})


def _job_time(value: Any) -> datetime | None:
    """A job time: zone-less UTC text (``YYYY-MM-DDTHH:MM:SS``), ISO-8601 or epoch ms; garbled: None."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return EPOCH + timedelta(milliseconds=value)
    try:
        return to_utc(value)
    except ValueError:
        return None


class Job(BaseModel):
    """A job as ``GET .../graphs/{graph_id}/jobs/{job_id}/status`` returns it.

    ``begin_time``/``end_time`` are aware UTC datetimes from the zone-less UTC text (None when
    absent or garbled); ``status`` is a ``JobStatus`` or, when GES sends something else, that text.
    """

    model_config = ConfigDict(extra="allow", populate_by_name=True, frozen=True)

    job_id: str | None = Field(default=None, alias="jobId")
    status: JobStatus | str | None = None
    job_type: str | None = Field(default=None, alias="jobType")
    job_name: str | None = Field(default=None, alias="jobName")
    related_graph: str | None = Field(default=None, alias="relatedGraph")
    begin_time: datetime | None = Field(default=None, alias="beginTime")
    end_time: datetime | None = Field(default=None, alias="endTime")
    fail_reason: str | None = Field(default=None, alias="failReason")
    job_progress: float | None = Field(default=None, alias="jobProgress")

    @field_validator("begin_time", "end_time", mode="before")
    @classmethod
    def _utc(cls, value: Any) -> datetime | None:
        return _job_time(value)

    @property
    def id(self) -> str:
        """The job's id (what a listing de-duplicates on)."""
        return self.job_id or ""

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_JOB_STATES

    @property
    def is_success(self) -> bool:
        return self.status == JobStatus.SUCCESS

    @property
    def outcome(self) -> str:
        """The one rule of every job wait: ``success``, ``failed`` or ``waiting`` (pending, waiting,
        running, and a state GES does not document: never taken for a pass nor a failure; the
        waiter logs it once, see ``documented``, and waits until its timeout)."""
        if self.status == JobStatus.SUCCESS:
            return "success"
        if self.status == JobStatus.FAILED:
            return "failed"
        return "waiting"

    @property
    def documented(self) -> bool:
        """Whether GES documents the job's state."""
        return self.status in DOCUMENTED_JOB_STATES

    def describe(self, graph: str) -> str:
        """How the job ended, for a failure message (its ``failReason`` when it has one)."""
        what = f"{self.job_name or 'Job'} {self.job_id or '?'} of {graph}"
        if self.status == JobStatus.FAILED:
            return f"{what} failed: {self.fail_reason or 'GES gave no reason'}"
        if not self.documented:
            return f"{what} is in a state GES does not document: {self.status!r}"
        return f"{what} is {self.status}"

    def to_api(self) -> dict[str, Any]:
        """The job with the API's field names (times as ISO-8601 UTC): the form for XCom."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class JobCreated(BaseModel):
    """The reply of a call that starts a job (create backup, stop, start): ``{"jobId": ...}``; a
    create's reply may name the new backup too (``backupId``, on newer API pages)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, frozen=True)

    job_id: str = Field(validation_alias=AliasChoices("jobId", "job_id"), min_length=1)
    backup_id: str | None = Field(default=None, validation_alias=AliasChoices("backupId", "backup_id"))


class JobPage(BaseModel):
    """One page of ``GET /v1.0/{project_id}/graphs/jobs``: ``{jobCount, jobList}``."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, frozen=True)

    job_count: int | None = Field(default=None, validation_alias=AliasChoices("jobCount", "job_count"), ge=0)
    job_list: list[Job] | None = Field(default=None, validation_alias=AliasChoices("jobList", "job_list"))

    @property
    def items(self) -> list[Job]:
        return self.job_list or []

    @property
    def total(self) -> int | None:
        return self.job_count


_ANY = BackupFilter()


class BackupFile(BaseModel):
    """One file of a backup (``GET /v2/.../backup-files``). The link is a credential: never in a repr."""

    model_config = ConfigDict(extra="allow", frozen=True)

    name: str | None = None
    size: int | None = None  # KB
    download_link: str | None = Field(default=None, repr=False)
    link_expired_time: str | None = None


class BackupFiles(BaseModel):
    """A backup's files and where they are: ``{bucket, files: [...]}``."""

    model_config = ConfigDict(extra="allow", frozen=True)

    bucket: str | None = None
    files: list[BackupFile] = Field(default_factory=list)


class QuotaResource(BaseModel):
    """One resource of ``GET /v2/{project_id}/graphs/quotas``: ``type`` (graph, backup, metadata) and
    how many are ``available``."""

    model_config = ConfigDict(extra="allow", frozen=True)

    type: str | None = None
    available: int | None = None


class _Quotas(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    resources: list[QuotaResource] = Field(default_factory=list)


class QuotasReply(BaseModel):
    """``{"quotas": {"resources": [...]}}``."""

    model_config = ConfigDict(extra="allow", frozen=True)

    quotas: _Quotas = Field(default_factory=_Quotas)
