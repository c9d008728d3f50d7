"""The backup gate: everything that decides whether a wait passes, fails or goes on.

``BackupGate`` is the rule (which backups count, which one passes); ``Watch`` is one wait on it
(the graph id found for a name, what was last logged); ``look`` is the plan of one look: the
graph-name look-up, its fallbacks, the listing and the verdict. ``GesBackupSensor`` and
``GesBackupTrigger`` run ``look`` and only map its verdict to Airflow.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import InitVar, dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from airflow_provider_ges.enums import BackupMethod, choice
from airflow_provider_ges.exceptions import GesApiError, GesNotFoundError
from airflow_provider_ges.models import Backup, BackupFilter, Graph
from airflow_provider_ges.plans import Plan, Warn
from airflow_provider_ges.times import to_utc

#: A look logs its line when what it saw changed, else at most this often.
LOG_EVERY = timedelta(minutes=5)


@dataclass(frozen=True)
class Verdict:
    """What a look concluded: ``success`` (pass), ``failed`` (fail fast) or ``waiting``."""

    state: Literal["success", "failed", "waiting"]
    backup: Backup | None = None
    message: str = ""
    #: what the look saw, for its log line (None: no look line, e.g. a missing graph fails with
    #: ``message`` alone)
    seen: str | None = None

    def event(self) -> dict[str, Any] | None:
        """The verdict as the backup trigger's event (the worker's waits map it the same way);
        None while waiting."""
        backup = None if self.backup is None else self.backup.to_api()
        if self.state == "success":
            return {"status": "success", "backup": backup}
        if self.state == "failed":
            return {"status": "failed", "backup": backup, "message": self.message}
        return None


class BackupGate(BaseModel):
    """The rule of ``GesBackupSensor`` and ``GesBackupTrigger``.

    Candidates are the graph's backups that started at or after ``newer_than``, match
    ``backup_method`` and, with ``max_age``, finished at most that long ago (running ones count).
    The gate passes on the newest successful candidate; it fails when the newest candidate failed
    and none succeeded (if ``fail_on_failure``); otherwise it waits.
    """

    model_config = ConfigDict(frozen=True)

    graph_id: str | None = None
    graph_name: str | None = None
    newer_than: datetime | None = None
    max_age: timedelta | None = None
    backup_method: BackupMethod | None = None
    fail_on_failure: bool = True
    #: Wait for this one backup (an attached create): it passes on its success, fails when it ends
    #: otherwise or is gone; the other criteria do not apply.
    backup_id: str | None = None

    @field_validator("newer_than", mode="before")
    @classmethod
    def _utc(cls, value: Any) -> datetime | None:
        return None if value is None or value == "" else to_utc(value)

    @field_validator("backup_method", mode="before")
    @classmethod
    def _method(cls, value: Any) -> BackupMethod | None:
        return choice("backup_method", value, BackupMethod)

    @model_validator(mode="after")
    def _a_graph(self) -> BackupGate:
        if not self.graph_id and not self.graph_name:
            raise ValueError("give graph_id or graph_name")
        return self

    @classmethod
    def of(cls, fields: dict[str, Any]) -> BackupGate:
        """A gate from (rendered) user arguments; a ``ValueError`` naming the field if one is bad."""
        try:
            return cls.model_validate(fields)
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ValueError(
                f"{where + ': ' if where else ''}{first['msg'].removeprefix('Value error, ')}"
            ) from None

    @property
    def graph(self) -> str:
        """How the graph is named in messages."""
        return f"graph {self.graph_name!r}" if self.graph_name else f"graph id {self.graph_id!r}"

    def judge(self, backups: Iterable[Backup], graph_id: str | None = None) -> Verdict:
        """The verdict on a listing (of graph ``graph_id``; else filtered by name)."""
        graph_id, backups = graph_id or self.graph_id, list(backups)
        if self.backup_id is not None:
            from airflow_provider_ges.lifecycle import attached_outcome

            backup = next((b for b in backups if b.id == self.backup_id), None)
            step = attached_outcome(backup, self.backup_id, self.graph)
            seen = None if backup is None else f"backup {_named(backup)} is {backup.status}"
            return Verdict(step.action, backup, step.message, seen)  # type: ignore[arg-type]
        selection = BackupFilter(
            graph_id=graph_id,
            graph_name=None if graph_id else self.graph_name,
            newer_than=self.newer_than,
            backup_method=self.backup_method,
        )
        cutoff = None if self.max_age is None else datetime.now(timezone.utc) - self.max_age
        candidates = [b for b in selection.select(backups) if _fresh(b, cutoff)]
        if not candidates:
            mine = BackupFilter(graph_id=graph_id, graph_name=selection.graph_name).select(backups)
            return Verdict("waiting", seen=self.why_none(mine[0] if mine else None, cutoff))
        newest = candidates[0]
        seen = f"newest candidate {_named(newest)} is {newest.status}"
        succeeded = next((b for b in candidates if b.is_success), None)
        if succeeded is not None:
            return Verdict("success", succeeded, seen=seen)
        if newest.is_failed and self.fail_on_failure:
            return Verdict("failed", newest, self.failure_message(newest), seen)
        return Verdict("waiting", newest, seen=seen)

    def why_none(self, newest: Backup | None, cutoff: datetime | None) -> str:
        """Why no backup counts: the criteria that applied, and the newest backup they ignored."""
        if newest is None:
            return "the graph has no backups"
        method = self.backup_method
        wanted = [
            f"started at or after {utc_text(self.newer_than)} (newer_than)" if self.newer_than else "",
            f"with backup_method {method.value!r}" if method else "",
            f"finished at or after {utc_text(cutoff)} (max_age {self.max_age})" if cutoff else "",
        ]
        seen = f"no backup {', '.join(filter(None, wanted))}; newest: {_named(newest)}"
        seen += f" started {utc_text(newest.start_time)}"
        if method is not None and newest.backup_method != method:
            return f"{seen}, a {str(newest.backup_method)!r} backup: excluded by backup_method"
        return seen if _fresh(newest, cutoff) else f"{seen}, finished {utc_text(newest.end_time)}"

    def failure_message(self, backup: Backup) -> str:
        started = utc_text(backup.start_time)
        return (
            f"Backup {_named(backup)} of {self.graph}, started {started}, failed, and no later backup"
            " succeeded"
        )


def _fresh(backup: Backup, cutoff: datetime | None) -> bool:
    """Whether a backup is within ``max_age`` (finished at or after ``cutoff``; running ones are)."""
    return cutoff is None or backup.end_time is None or backup.end_time >= cutoff


def _named(backup: Backup) -> str:
    return f"{backup.name or backup.id!r} (id {backup.id})"


def utc_text(moment: datetime | None) -> str:
    """A time for messages: UTC ISO-8601 with ``Z``, to the second (to the ms when it has some)."""
    if moment is None:
        return "at an unknown time"
    spec = "milliseconds" if moment.microsecond else "seconds"
    return moment.astimezone(timezone.utc).replace(tzinfo=None).isoformat(timespec=spec) + "Z"


def graph_list_refused(err: GesApiError) -> bool:
    """Whether the graph list call itself was refused (no permission, no such call), as opposed to a
    failed token (never tried twice: IAM locks accounts) or a transient error (waited out)."""
    is_graph_list = err.method == "GET" and err.path is not None and err.path.endswith("/graphs")
    return is_graph_list and not err.transient and err.status_code != 401


def graph_id_named(graphs: Iterable[Graph], name: str) -> str | None:
    """The id of the one graph called ``name``; None when there is none, or more than one."""
    return graph_refusal(graphs, name)[0]


def graph_refusal(graphs: Iterable[Graph], name: str) -> tuple[str | None, str | None]:
    """What the graph list says of ``name``: (the one graph's id, None), or (None, why not: no graph
    or several have it, naming them). The one name rule of the gate, the watcher and the operators."""
    graphs = list(graphs)
    same = sorted({g.id for g in graphs if g.name == name})
    if len(same) == 1:
        return same[0], None
    if same:
        return None, f"Several graphs are named {name!r} (ids {', '.join(same)}): give graph_id"
    there = ", ".join(sorted({repr(g.name or g.id) for g in graphs})) or "none"
    return None, f"No graph named {name!r}: the project's graphs are {there}"


@dataclass
class GraphListing:
    """Which listing shows a graph given by id or by name: the one policy of the gate and the watcher.

    A ``graph_name`` is turned into the graph's id once (``GET /graphs``), so each listing reads one
    graph's backups. When several graphs have the name, none has it, or the graph list is refused
    (warned once), the project's backups are listed instead (the caller filters them by name; with
    no such graph ``missing`` says what the project has). A found graph that is gone later
    (deleted, perhaps re-created) is looked up again.
    """

    graph_id: str | None
    graph_name: str | None
    found_graph_id: str | None = None
    looked_up: bool = False
    #: Why no graph has ``graph_name`` (naming the graphs there are), once looked up.
    missing: str | None = None

    def __post_init__(self) -> None:
        self.looked_up = self.looked_up or self.found_graph_id is not None

    @property
    def listed_id(self) -> str | None:
        """The graph whose own listing is read (None: the project's)."""
        return self.graph_id or self.found_graph_id

    def backups(
        self,
        list_graphs: Callable[[], Plan[list[Graph]]],
        list_backups: Callable[[str | None], Plan[list[Backup]]],
    ) -> Plan[list[Backup] | None]:
        """The plan of one listing; None when the found graph is gone (looked up again next time)."""
        name = self.graph_name
        if self.graph_id is None and name is not None and not self.looked_up:
            try:
                graphs = yield from list_graphs()
            except GesApiError as err:
                if not graph_list_refused(err):
                    raise  # transient or auth: not looked up yet
                yield Warn(
                    f"Cannot list the graphs of the project, so filtering all its backups by name: {err}"
                )
            else:
                self.found_graph_id, refusal = graph_refusal(graphs, name)
                self.missing = refusal if refusal and refusal.startswith("No graph") else None
            self.looked_up = True
        try:
            return (yield from list_backups(self.listed_id))
        except GesNotFoundError as err:
            if self.found_graph_id is None:
                raise
            yield Warn(
                f"Graph {name!r} (id {self.found_graph_id}) is gone ({err}); will look its name up again"
            )
            self.found_graph_id, self.looked_up = None, False
            return None


@dataclass
class Watch:
    """One wait on a gate: where its graph is listed (``GraphListing``) and what was last logged.

    When no graph has the gate's ``graph_name`` and no backup carries it, the look fails at once,
    naming the graphs there are.
    """

    gate: BackupGate
    project_id: str = ""
    found_graph_id: InitVar[str | None] = None
    #: share listings with other waiters of this process for this many seconds (the triggers' poll)
    share_for: float | None = None
    listing: GraphListing = field(init=False)
    _last_line: tuple[str, float] | None = field(default=None, repr=False)

    def __post_init__(self, found_graph_id: str | None) -> None:
        self.listing = GraphListing(self.gate.graph_id, self.gate.graph_name, found_graph_id)

    @property
    def graph_id(self) -> str | None:
        return self.listing.listed_id

    def look(
        self,
        list_graphs: Callable[[], Plan[list[Graph]]],
        list_backups: Callable[[str | None], Plan[list[Backup]]],
    ) -> Plan[Verdict]:
        """The plan of one look."""
        backups = yield from self.listing.backups(list_graphs, list_backups)
        if backups is None:  # the graph found for the name is gone (warned): no look line
            return Verdict("waiting")
        name = self.gate.graph_name
        if self.listing.missing is not None and not any(b.graph_name == name for b in backups):
            return Verdict("failed", message=f"{self.listing.missing} (project {self.project_id})")
        return self.gate.judge(backups, self.graph_id)

    def report(self, verdict: Verdict, now: float | None = None) -> str | None:
        """The info line for a look (``verdict.seen``), or None: the verdict has none, or the line
        would repeat the last one within ``LOG_EVERY``. The sensor and the trigger both log it."""
        if verdict.seen is None:
            return None
        where = f"{self.gate.graph}" + (f" (id {self.graph_id})" if self.graph_id else "")
        line = f"Looked at {where}: {verdict.seen}"
        now = time.monotonic() if now is None else now
        last = self._last_line
        if last is not None and last[0] == line and now - last[1] < LOG_EVERY.total_seconds():
            return None
        self._last_line = (line, now)
        return line
