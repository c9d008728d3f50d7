"""The watermark of a backup watcher: which backups are new since the last report, and what to keep.

No I/O here. ``GesBackupEventTrigger`` feeds every listing of the graph to ``advance`` with the
``Watermark`` it holds, fires the backups the returned ``Step`` names and keeps (or stores) the
step's watermark. The rules, all of them:

1. **Baseline.** The first listing a watcher ever sees fires nothing: every backup already in the
   watched status (``success``, or ``failed`` for a failure watcher) is taken as reported, and the
   time of that listing is kept as ``since``. A backup in a state that is not final (``backing_up``,
   or any status but ``success`` and ``failed``) is *waiting*: it fires when it gets to the watched
   status.
2. **Only what did not exist.** A backup in the watched status whose id is not reported fires only
   if it cannot have been in that status at the baseline: it is waiting, or it ended at or after
   ``since`` minus ``CLOCK_SLACK`` (GES's clock against the triggerer's), or its end time is
   unknown, or it was imported (``backup_method`` ``import``: an import carries the timestamps of
   the backup it was made from, so its times say nothing about when it appeared). Every other
   backup had ended before the watcher started and **never** fires, whatever the listings did in
   between: an empty or short listing, a graph rebuilt under the watched name, a project-wide
   fallback listing showing an older graph's backups. The end time, not the start time, decides:
   backups finish out of order, and a long backup started before the baseline (still running then)
   fires when it succeeds even if the baseline listing did not show it.
3. **Once.** A backup fires on the first listing that shows it so, and its id joins the reported
   ones; a reported id never fires again while the watermark holds it (rule 4).
4. **Bounded.** The watermark keeps the reported ids the listing still shows; of those it no
   longer shows (deleted backups, or a listing that came back empty or short), the most recently
   reported ``KEEP_GONE``, or more, as many as keep the watermark as long as it was: a listing that
   comes back short forgets nothing, and the watermark never holds more than its largest listing
   plus ``KEEP_GONE``. Never forgotten are the baseline ids that rule 2 cannot tell from new ones
   (``pinned``: imports, no end time, ended within ``CLOCK_SLACK`` of the baseline; normally none or
   a few). So forgetting a baseline id never makes it new: rule 2 holds it back, or it is pinned;
   and the oldest ids, the baseline's, are forgotten first. The limits: an id reported *after* the
   baseline that vanishes, is forgotten (new backups firing while more than ``KEEP_GONE`` reported
   ones are missing), and comes back fires again, a repeat, never a loss; an import, or a backup
   without an end time, that was there at the baseline but missing from the baseline listing cannot
   be told from a new one, and fires when shown.
5. **Waiting** ids leave when they fire or show in a final state (``success`` or ``failed``); the
   ones the listing no longer shows are kept as in rule 4 (most recently seen first). A forgotten
   waiting id still fires by its end time (rule 2).
6. Several backups new in one listing fire in the order they finished (end time, then start time,
   then id).
7. A watermark without ``since`` (stored by a version that did not keep it) uses ids only: any id
   not reported fires, as that version did.

The watermark is a JSON object (``to_state`` / ``from_state``) so that it fits Airflow's asset state
store: ``{"v": 1, "since_ms": <baseline, ms since the epoch, or null>, "reported": [ids, oldest
first], "waiting": [ids], "pinned": [ids, a subset of reported]}``; a state without ``waiting`` or
``pinned`` (an older version's) reads them as empty. An unreadable stored value is reported as
absent, never a crash.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow_provider_ges.enums import BackupMethod, BackupStatus
from airflow_provider_ges.models import EPOCH, Backup, BackupFilter, datetime_to_ms

#: Reported (and waiting) ids that the listing no longer shows, kept (newest first).
KEEP_GONE = 256
#: How far GES's clock may lag the triggerer's: a backup that ended this long before the baseline
#: may still be new (rule 2), and is pinned if the baseline shows it (rule 4).
CLOCK_SLACK = timedelta(seconds=10)
#: The statuses a backup never leaves: a backup in any other is still running (waiting).
FINAL = (BackupStatus.SUCCESS, BackupStatus.FAILED)
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
    """What a watcher has reported: ids oldest first, when it first listed (its baseline), the ids it
    saw running (``waiting``) and the baseline ids it must never forget (``pinned``)."""

    reported: tuple[str, ...] = ()
    since: datetime | None = None
    waiting: tuple[str, ...] = ()
    pinned: tuple[str, ...] = ()

    def to_state(self) -> dict[str, Any]:
        """The JSON value to store."""
        since = None if self.since is None else datetime_to_ms(self.since)
        return {
            "v": STATE_VERSION,
            "since_ms": since,
            "reported": list(self.reported),
            "waiting": list(self.waiting),
            "pinned": list(self.pinned),
        }

    @classmethod
    def from_state(cls, value: Any) -> Watermark | None:
        """The watermark of a stored value; None when there is none or it cannot be read."""
        if not isinstance(value, dict) or value.get("v") != STATE_VERSION:
            return None
        reported = _ids(value.get("reported"))
        waiting = _ids(value.get("waiting", []))
        pinned = _ids(value.get("pinned", []))
        if reported is None or waiting is None or pinned is None:
            return None
        since_ms = value.get("since_ms")
        since = None
        if isinstance(since_ms, int) and not isinstance(since_ms, bool):
            try:
                since = EPOCH + timedelta(milliseconds=since_ms)
                since - CLOCK_SLACK  # rule 2 must be able to take the slack off
            except OverflowError:
                since = None
        return cls(reported, since, waiting, pinned)

    @classmethod
    def merge(cls, marks: Iterable[Watermark | None]) -> Watermark | None:
        """One watermark from several stores (a trigger watching several assets): every id any of
        them reported, waits for or pins, the earliest baseline. None when none has a watermark."""
        present = [m for m in marks if m is not None]
        if not present:
            return None
        ids = dict.fromkeys(i for m in present for i in m.reported)
        waiting = tuple(i for i in dict.fromkeys(i for m in present for i in m.waiting) if i not in ids)
        pinned = tuple(dict.fromkeys(i for m in present for i in m.pinned))
        sinces = [m.since for m in present if m.since is not None]
        return cls(tuple(ids), min(sinces) if sinces else None, waiting, pinned)


def _ids(value: Any) -> tuple[str, ...] | None:
    if not isinstance(value, list) or not all(isinstance(i, str) for i in value):
        return None
    return tuple(dict.fromkeys(value))


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


def _may_be_new(backup: Backup, since: datetime | None) -> bool:
    """Whether ``backup`` (in its final status) may have got there after ``since`` (rule 2)."""
    return (
        since is None
        or backup.backup_method == BackupMethod.IMPORT
        or backup.end_time is None
        or backup.end_time >= since - CLOCK_SLACK
    )


def _trim(ids: list[str], listed: set[str], keep: set[str], before: int) -> tuple[str, ...]:
    """``ids`` (oldest first) without the oldest *gone* ones (neither listed nor in ``keep``) beyond
    ``KEEP_GONE``, or beyond as many as keep the list as long as it was (``before``): rule 4."""
    gone = [i for i in ids if i not in listed and i not in keep]
    room = max(KEEP_GONE, before - (len(ids) - len(gone)))
    forget = set(gone[: max(0, len(gone) - room)])
    return tuple(i for i in ids if i not in forget)


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
    running: dict[str, None] = {}  # ids in a state that is not final, in listing order
    ended: set[str] = set()  # ids in a final state
    for backup in listed:
        if backup.status == status:
            arrived.setdefault(backup.id, backup)
        if backup.status in FINAL:
            ended.add(backup.id)
        else:
            running[backup.id] = None
    if mark is None:
        # to the millisecond, as stored: the rules give the same answers after a restart
        since = EPOCH + timedelta(milliseconds=datetime_to_ms(now or datetime.now(timezone.utc)))
        baselined = [b.id for b in sorted(arrived.values(), key=_finish_order)]
        pinned = tuple(i for i in baselined if _may_be_new(arrived[i], since))
        waiting = tuple(i for i in running if i not in ended and i not in arrived)
        base = Watermark(tuple(baselined), since, waiting, pinned)
        return Step([], base, baseline=True, baselined=baselined)
    pinned_ids = set(mark.pinned)
    known = set(mark.reported) | pinned_ids
    was_waiting = set(mark.waiting)
    fire = sorted(
        (
            b
            for i, b in arrived.items()
            if i not in known and (i in was_waiting or _may_be_new(b, mark.since))
        ),
        key=_finish_order,
    )
    reported = [*mark.reported, *(b.id for b in fire)]
    reported_now = _trim(reported, listed_ids, pinned_ids, len(mark.reported))
    done = known | ended | {b.id for b in fire}
    # oldest seen first: the ones listed now move to the end
    still = [*(i for i in mark.waiting if i not in running), *running]
    waits = [i for i in still if i not in done]
    waiting_now = _trim(waits, listed_ids, set(), len(mark.waiting))
    return Step(fire, Watermark(reported_now, mark.since, waiting_now, mark.pinned))
