"""The watermark of a backup watcher: which backups are new since the last report, and what to keep.

No I/O here. ``GesBackupEventTrigger`` feeds every listing of the graph to ``advance`` with the
``Watermark`` it holds, fires the backups the returned ``Step`` names and keeps (or stores) the
step's watermark. The rules, all of them:

1. The first listing a watcher ever sees is its **baseline**: every backup already in the watched
   status (``success``, or ``failed`` for a failure watcher) is taken as reported and fires nothing.
   A backup still ``backing_up`` then fires when it gets there.
2. Afterwards a backup fires once, on the first listing that shows it in the watched status, unless
   its id is already in the watermark. Ids, not times: backups finish out of order (a long full
   backup started before a short incremental one ends after it), and an imported backup can carry
   old timestamps; neither is missed, neither fires twice.
3. The watermark keeps every reported id the listing still shows, plus the ``KEEP_GONE`` most
   recently reported ids it no longer shows (deleted backups, or a listing that came back short):
   the stored state stays small, and an id that vanishes and comes back does not fire again.
4. Backups fire in the order they finished (end time, then start time, then id).

The watermark is a JSON object (``to_state`` / ``from_state``) so that it fits Airflow's asset state
store; an unreadable stored value is reported as absent, never a crash.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow_provider_ges.enums import BackupMethod, BackupStatus
from airflow_provider_ges.models import EPOCH, Backup, BackupFilter, datetime_to_ms

#: Reported ids that the listing no longer shows, kept (newest first) so they never fire again.
KEEP_GONE = 256
#: The version of the stored state; another version is read as no state.
STATE_VERSION = 1
_LATEST = datetime.max.replace(tzinfo=timezone.utc)


def state_key(
    ges_conn_id: str,
    *,
    graph_id: str | None,
    graph_name: str | None,
    backup_method: BackupMethod | str | None,
    status: BackupStatus | str,
) -> str:
    """The asset-state-store key of one watcher: two watchers of one asset keep apart watermarks.

    Made of what decides which backups fire, and nothing else (not the poll interval): changing how
    often a watcher polls keeps its watermark.
    """
    graph = f"id={graph_id}" if graph_id else f"name={graph_name}"
    return f"ges.backup_events:{ges_conn_id}:{graph}:{backup_method or 'any'}:{status}"


def watched(
    backups: Iterable[Backup],
    *,
    graph_id: str | None = None,
    graph_name: str | None = None,
    backup_method: BackupMethod | str | None = None,
) -> list[Backup]:
    """The backups a watcher considers: of the graph (its id, else its name), of the method."""
    selection = BackupFilter(
        graph_id=graph_id,
        graph_name=None if graph_id else graph_name,
        backup_method=backup_method,
    )
    return [b for b in backups if selection.matches(b)]


@dataclass(frozen=True)
class Watermark:
    """What a watcher has reported: ids oldest first, and when it first listed (its baseline)."""

    reported: tuple[str, ...] = ()
    since: datetime | None = None

    def to_state(self) -> dict[str, Any]:
        """The JSON value to store."""
        since = None if self.since is None else datetime_to_ms(self.since)
        return {"v": STATE_VERSION, "since_ms": since, "reported": list(self.reported)}

    @classmethod
    def from_state(cls, value: Any) -> Watermark | None:
        """The watermark of a stored value; None when there is none or it cannot be read."""
        if not isinstance(value, dict) or value.get("v") != STATE_VERSION:
            return None
        reported = value.get("reported")
        if not isinstance(reported, list) or not all(isinstance(i, str) for i in reported):
            return None
        since_ms = value.get("since_ms")
        since = None
        if isinstance(since_ms, int) and not isinstance(since_ms, bool):
            try:
                since = EPOCH + timedelta(milliseconds=since_ms)
            except OverflowError:
                since = None
        return cls(tuple(dict.fromkeys(reported)), since)

    @classmethod
    def merge(cls, marks: Iterable[Watermark | None]) -> Watermark | None:
        """One watermark from several stores (a trigger watching several assets): every id any of
        them reported, the earliest baseline. None when none has a watermark."""
        present = [m for m in marks if m is not None]
        if not present:
            return None
        ids = dict.fromkeys(i for m in present for i in m.reported)
        sinces = [m.since for m in present if m.since is not None]
        return cls(tuple(ids), min(sinces) if sinces else None)


@dataclass(frozen=True)
class Step:
    """What one listing means: the backups to fire (in order) and the watermark after them."""

    fire: list[Backup]
    mark: Watermark
    baseline: bool = False
    #: Ids the baseline took as already reported (empty after the baseline).
    baselined: list[str] = field(default_factory=list)


def _finish_order(backup: Backup) -> tuple[datetime, datetime, str]:
    return (backup.end_time or _LATEST, backup.start_time or _LATEST, backup.id)


def advance(
    mark: Watermark | None,
    backups: Iterable[Backup],
    *,
    status: BackupStatus | str = BackupStatus.SUCCESS,
    now: datetime | None = None,
) -> Step:
    """The step from ``mark`` (None: nothing listed yet) given a listing of the watched backups."""
    listed = list(backups)
    listed_ids = {b.id for b in listed}
    arrived: dict[str, Backup] = {}
    for backup in listed:
        if backup.status == status:
            arrived.setdefault(backup.id, backup)
    if mark is None:
        since = now or datetime.now(timezone.utc)
        ids = sorted(arrived.values(), key=_finish_order)
        baselined = [b.id for b in ids]
        return Step([], Watermark(tuple(baselined), since), baseline=True, baselined=baselined)
    known = set(mark.reported)
    fire = sorted((b for i, b in arrived.items() if i not in known), key=_finish_order)
    reported = [*mark.reported, *(b.id for b in fire)]
    gone = [i for i in reversed(reported) if i not in listed_ids][:KEEP_GONE]
    keep = listed_ids | set(gone)
    return Step(fire, Watermark(tuple(i for i in reported if i in keep), mark.since))
