"""The watermark of the backup event trigger (sans-IO): which backups fire, what is kept."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_ges.models import Backup
from airflow_provider_ges.watermark import (
    KEEP_GONE,
    Watermark,
    advance,
    state_key,
    watched,
)

T0 = datetime(2026, 5, 1, 12, tzinfo=timezone.utc)


def ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


def backup(
    backup_id: str,
    status: str = "success",
    *,
    start: int = 0,
    end: int | None = 1,
    method: str = "manual",
    graph: str = "g1",
) -> Backup:
    """A backup that started ``start`` minutes after T0 and ended ``end`` minutes after its start."""
    started = T0 + timedelta(minutes=start)
    wire: dict[str, Any] = {
        "id": backup_id,
        "name": f"b-{backup_id}",
        "graphId": graph,
        "graph_name": f"name-{graph}",
        "backupMethod": method,
        "status": status,
        "startTimestamp": ms(started),
    }
    if status != "backing_up" and end is not None:
        wire["endTimestamp"] = ms(started + timedelta(minutes=end))
    return Backup.model_validate(wire)


def ids(backups: list[Backup]) -> list[str]:
    return [b.id for b in backups]


def test_baseline_fires_nothing_and_takes_the_existing_successes() -> None:
    step = advance(None, [backup("a"), backup("b", "failed"), backup("c", "backing_up")], now=T0)
    assert step.fire == [] and step.baseline
    assert step.mark == Watermark(("a",), T0)
    assert step.baselined == ["a"]


def test_a_backup_that_was_running_at_the_baseline_fires_when_it_succeeds() -> None:
    mark = advance(None, [backup("a"), backup("c", "backing_up", start=5)]).mark
    assert advance(mark, [backup("a"), backup("c", "backing_up", start=5)]).fire == []
    step = advance(mark, [backup("a"), backup("c", start=5)])
    assert ids(step.fire) == ["c"] and not step.baseline
    assert step.mark.reported == ("a", "c") and step.mark.since == mark.since


def test_same_backup_seen_twice_fires_once() -> None:
    mark = advance(None, []).mark
    first = advance(mark, [backup("a")])
    assert ids(first.fire) == ["a"]
    again = advance(first.mark, [backup("a"), backup("a")])
    assert again.fire == [] and again.mark == first.mark
    # and a listing that repeats an id within itself fires it once
    assert ids(advance(mark, [backup("b"), backup("b")]).fire) == ["b"]


def test_out_of_order_start_times_all_fire_in_finish_order() -> None:
    mark = advance(None, [backup("old", start=-100)]).mark
    # A long full backup started first and ended last; an incremental started later, ended first.
    full = backup("full", start=0, end=90)
    incremental = backup("incr", start=30, end=5)
    step = advance(mark, [incremental, full])
    assert ids(step.fire) == ["incr", "full"]
    # One at a time, in the order they succeed: the later-starting one first, then the earlier one.
    one = advance(mark, [backup("full", "backing_up", start=0), incremental])
    assert ids(one.fire) == ["incr"]
    two = advance(one.mark, [full, incremental])
    assert ids(two.fire) == ["full"]  # started before the one already reported: not missed


def test_an_imported_backup_with_old_timestamps_still_fires() -> None:
    mark = advance(None, [backup("a", start=0)]).mark
    imported = backup("imp", start=-10_000, method="import")
    assert ids(advance(mark, [backup("a"), imported]).fire) == ["imp"]


def test_a_deleted_backup_leaves_the_watermark_and_does_not_refire_if_listed_again() -> None:
    mark = advance(None, [backup("a"), backup("b")]).mark
    shrunk = advance(mark, [backup("b")])
    assert shrunk.fire == []
    assert shrunk.mark.reported == ("a", "b")  # "a" kept among the recently gone
    # the listing shrinks to nothing (all deleted, or a short listing): nothing fires, and
    # nothing fires when they show again
    empty = advance(shrunk.mark, [])
    assert empty.fire == [] and set(empty.mark.reported) == {"a", "b"}
    assert advance(empty.mark, [backup("a"), backup("b")]).fire == []
    # a new one after the shrinking still fires
    assert ids(advance(empty.mark, [backup("c", start=9)]).fire) == ["c"]


def test_the_watermark_stays_bounded_as_backups_come_and_go() -> None:
    mark = advance(None, []).mark
    for n in range(KEEP_GONE * 2):
        step = advance(mark, [backup(f"b{n}", start=n)])  # each listing shows only the newest
        assert ids(step.fire) == [f"b{n}"]
        mark = step.mark
    assert len(mark.reported) == KEEP_GONE + 1  # the listed one and the most recent gone ones
    assert mark.reported[-1] == f"b{KEEP_GONE * 2 - 1}"
    assert "b0" not in mark.reported


def test_failed_watcher_fires_failures_only() -> None:
    mark = advance(None, [backup("f0", "failed")], status="failed").mark
    step = advance(mark, [backup("f0", "failed"), backup("f1", "failed"), backup("s1")], status="failed")
    assert ids(step.fire) == ["f1"]


def test_state_round_trip_and_unreadable_states() -> None:
    mark = Watermark(("a", "b"), T0)
    state = mark.to_state()
    assert state == {"v": 1, "since_ms": ms(T0), "reported": ["a", "b"]}
    assert Watermark.from_state(state) == mark
    assert Watermark.from_state({"v": 1, "reported": ["a"]}) == Watermark(("a",), None)
    for garbage in (None, "x", [], {}, {"v": 2, "reported": []}, {"v": 1, "reported": [1]}):
        assert Watermark.from_state(garbage) is None
    assert Watermark.from_state({"v": 1, "reported": [], "since_ms": 10**20}) == Watermark((), None)


def test_state_store_absent_means_a_baseline() -> None:
    # The trigger reads no state (no store on Airflow 3.1/3.2, or nothing stored yet): None, so the
    # next listing is a baseline that fires nothing, whatever it holds.
    assert Watermark.merge([]) is None
    assert Watermark.merge([None, None]) is None
    step = advance(Watermark.merge([]), [backup("a"), backup("b", start=3)])
    assert step.baseline and step.fire == []


def test_merge_of_several_assets_stores() -> None:
    later = T0 + timedelta(hours=1)
    merged = Watermark.merge([Watermark(("a",), later), None, Watermark(("b", "a"), T0)])
    assert merged == Watermark(("a", "b"), T0)


def test_watched_selects_graph_and_method() -> None:
    listing = [backup("a", graph="g1"), backup("b", graph="g2"), backup("c", method="auto")]
    assert ids(watched(listing, graph_id="g1")) == ["a", "c"]
    assert ids(watched(listing, graph_name="name-g2")) == ["b"]
    assert ids(watched(listing, graph_id="g1", backup_method="auto")) == ["c"]


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"graph_id": "g1", "graph_name": None}, "ges.backup_events:c:id=g1:any:success"),
        ({"graph_id": None, "graph_name": "movies"}, "ges.backup_events:c:name=movies:any:success"),
    ],
)
def test_state_key(kwargs: dict[str, Any], key: str) -> None:
    assert state_key("c", backup_method=None, status="success", **kwargs) == key
    assert state_key("c", backup_method="auto", status="failed", **kwargs).endswith(":auto:failed")
