"""The watermark of the backup event trigger (sans-IO): which backups fire, what is kept."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_ges import watermark
from airflow_provider_ges.models import Backup
from airflow_provider_ges.watermark import (
    CLOCK_SLACK,
    KEEP_GONE,
    Watermark,
    advance,
    state_key,
    watched,
)

#: The baseline of most tests: the watcher's first listing is at T0.
T0 = datetime(2026, 5, 1, 12, tzinfo=timezone.utc)
YEAR = 60 * 24 * 365  # minutes


def ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


def backup(
    backup_id: str,
    status: str = "success",
    *,
    start: float = 0,
    end: float | None = 1,
    method: str = "manual",
    graph: str = "g1",
    graph_name: str | None = None,
) -> Backup:
    """A backup that started ``start`` minutes after T0 and ended ``end`` minutes after its start
    (no end time when ``end`` is None or the backup is still ``backing_up``)."""
    started = T0 + timedelta(minutes=start)
    wire: dict[str, Any] = {
        "id": backup_id,
        "name": f"b-{backup_id}",
        "graphId": graph,
        "graph_name": graph_name or f"name-{graph}",
        "backupMethod": method,
        "status": status,
        "startTimestamp": ms(started),
    }
    if status != "backing_up" and end is not None:
        wire["endTimestamp"] = ms(started + timedelta(minutes=end))
    return Backup.model_validate(wire)


def ids(backups: list[Backup]) -> list[str]:
    return [b.id for b in backups]


def year_old(n: int = 300, **kwargs: Any) -> list[Backup]:
    """``n`` successful backups of a year ago, an hour apart, oldest first."""
    return [backup(f"old{i:03}", start=-YEAR + 60 * i, **kwargs) for i in range(n)]


def test_baseline_fires_nothing_and_takes_the_existing_successes() -> None:
    listing = [backup("a", start=-10), backup("b", "failed", start=-5), backup("c", "backing_up", start=-2)]
    step = advance(None, listing, now=T0)
    assert step.fire == [] and step.baseline
    assert step.mark == Watermark(("a",), T0, waiting=("c",))
    assert step.baselined == ["a"]


def test_a_backup_that_was_running_at_the_baseline_fires_when_it_succeeds() -> None:
    mark = advance(None, [backup("a", start=-10), backup("c", "backing_up", start=5)], now=T0).mark
    assert advance(mark, [backup("a", start=-10), backup("c", "backing_up", start=5)]).fire == []
    step = advance(mark, [backup("a", start=-10), backup("c", start=5)])
    assert ids(step.fire) == ["c"] and not step.baseline
    assert step.mark.reported == ("a", "c") and step.mark.since == mark.since
    assert step.mark.waiting == ()  # fired: no longer waiting


def test_a_long_backup_started_before_the_baseline_fires_once_when_it_succeeds() -> None:
    old = year_old(20)
    # started 10 hours before the baseline, still running at it
    mark = advance(None, [*old, backup("long", "backing_up", start=-600)], now=T0).mark
    assert mark.waiting == ("long",)
    running = advance(mark, [backup("long", "backing_up", start=-600)])  # a short listing meanwhile
    assert running.fire == []
    done = advance(running.mark, [*old, backup("long", start=-600, end=700)])
    assert ids(done.fire) == ["long"]
    assert advance(done.mark, [*old, backup("long", start=-600, end=700)]).fire == []
    # the baseline listing did not show it (came back short): its end time says it is new
    blind = advance(None, old[:3], now=T0).mark
    assert ids(advance(blind, [*old, backup("long", start=-600, end=700)]).fire) == ["long"]


def test_a_waiting_backup_fires_even_if_the_ges_clock_lags() -> None:
    # GES stamps an end time before the baseline (its clock behind the triggerer's): having seen
    # the backup running, the watcher knows it is new all the same
    mark = advance(None, [backup("lag", "backing_up", start=-30)], now=T0).mark
    lagging = backup("lag", start=-30, end=20)  # ends 10 minutes "before" the baseline
    step = advance(mark, [lagging])
    assert ids(step.fire) == ["lag"]
    assert advance(step.mark, [lagging]).fire == []


def test_the_clock_slack() -> None:
    mark = advance(None, [], now=T0).mark  # an empty baseline
    slack = CLOCK_SLACK.total_seconds() / 60
    just = backup("just", start=-10, end=10 - slack / 2)  # ended within the slack: may be new
    before = backup("before", start=-10, end=10 - 2 * slack)  # ended before it: was there
    assert ids(advance(mark, [just, before]).fire) == ["just"]
    # and the baseline pins what it shows within the slack, so that it never fires
    pinned = advance(None, [just, before], now=T0).mark
    assert pinned.pinned == ("just",) and pinned.reported == ("before", "just")


def test_same_backup_seen_twice_fires_once() -> None:
    mark = advance(None, [], now=T0).mark
    first = advance(mark, [backup("a")])
    assert ids(first.fire) == ["a"]
    again = advance(first.mark, [backup("a"), backup("a")])
    assert again.fire == [] and again.mark == first.mark
    # and a listing that repeats an id within itself fires it once
    assert ids(advance(mark, [backup("b"), backup("b")]).fire) == ["b"]


def test_out_of_order_start_times_all_fire_in_finish_order() -> None:
    mark = advance(None, [backup("old", start=-100)], now=T0).mark
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


def test_an_imported_backup_with_old_timestamps_still_fires_once() -> None:
    mark = advance(None, [backup("a", start=-5)], now=T0).mark
    imported = backup("imp", start=-YEAR, method="import")  # imported after the baseline
    step = advance(mark, [backup("a", start=-5), imported])
    assert ids(step.fire) == ["imp"]
    assert advance(step.mark, [backup("a", start=-5), imported]).fire == []


def test_an_import_of_the_baseline_is_never_forgotten() -> None:
    # its times cannot tell it from a new import, so the baseline pins it: however long it is
    # not listed, and however many other ids are forgotten meanwhile, it never fires
    imported = backup("imp", start=-2 * YEAR, method="import")
    untimed = Backup.model_validate({"id": "untimed", "status": "success", "graphId": "g1"})
    listing = [imported, untimed, *year_old()]
    mark = advance(None, listing, now=T0).mark
    assert set(mark.pinned) == {"imp", "untimed"}
    for n in range(2 * KEEP_GONE):  # the old ones gone, new ones coming and going
        mark = advance(mark, [backup(f"new{n}", start=n)]).mark
    assert len(mark.reported) == len(listing)  # as long as at its longest, the old ids forgotten
    assert not set(mark.reported) & {b.id for b in listing[2:]}
    assert set(mark.pinned) == {"imp", "untimed"} <= set(mark.reported)
    assert advance(mark, listing).fire == []


def test_a_deleted_backup_leaves_the_watermark_and_does_not_refire_if_listed_again() -> None:
    mark = advance(None, [backup("a", start=-20), backup("b", start=-10)], now=T0).mark
    shrunk = advance(mark, [backup("b", start=-10)])
    assert shrunk.fire == []
    assert shrunk.mark.reported == ("a", "b")  # "a" kept among the recently gone
    # the listing shrinks to nothing (all deleted, or a short listing): nothing fires, and
    # nothing fires when they show again
    empty = advance(shrunk.mark, [])
    assert empty.fire == [] and set(empty.mark.reported) == {"a", "b"}
    assert advance(empty.mark, [backup("a", start=-20), backup("b", start=-10)]).fire == []
    # a new one after the shrinking still fires
    assert ids(advance(empty.mark, [backup("c", start=9)]).fire) == ["c"]


def test_an_empty_listing_then_the_full_one_fires_no_old_backup() -> None:
    """The issue: 300 successes in the baseline, one empty listing (256 of them were kept as
    recently gone, 44 forgotten), then the full listing fired the 44 forgotten ones."""
    old = year_old()
    mark = advance(None, old, now=T0).mark
    empty = advance(mark, [])
    assert empty.fire == [] and empty.mark == mark  # a listing that came back empty forgets nothing
    assert advance(empty.mark, old).fire == []
    new = backup("new", start=3)
    assert ids(advance(empty.mark, [*old, new]).fire) == ["new"]  # a new one is not missed


def test_a_short_listing_then_the_full_one_fires_no_old_backup() -> None:
    old = year_old()
    mark = advance(None, old, now=T0).mark
    short = advance(mark, old[:10])
    assert short.fire == []
    assert advance(short.mark, old).fire == []


def test_old_backups_forgotten_while_new_ones_come_and_go_never_fire() -> None:
    old = year_old()
    mark = advance(None, old, now=T0).mark
    fired = []
    for n in range(2 * KEEP_GONE):  # the old ones gone (deleted, or hidden), new ones come and go
        step = advance(mark, [backup(f"new{n}", start=n)])
        fired += ids(step.fire)
        mark = step.mark
    assert fired == [f"new{n}" for n in range(2 * KEEP_GONE)]
    assert not set(mark.reported) & {b.id for b in old}  # all forgotten
    assert advance(mark, old).fire == []  # and back: none fires


def test_backups_reported_after_the_baseline_do_not_fire_again_after_an_empty_listing() -> None:
    mark = advance(None, [], now=T0).mark
    new = [backup(f"n{i:03}", start=i) for i in range(400)]  # more than KEEP_GONE
    assert len(advance(mark, new).fire) == 400
    mark = advance(mark, new).mark
    for short in ([], new[:10], new[-3:]):
        step = advance(mark, short)
        assert step.fire == [] and step.mark.reported == mark.reported  # forgets nothing
        assert advance(step.mark, new).fire == []
        assert advance(advance(step.mark, []).mark, new).fire == []


def test_a_short_baseline_then_the_full_listing_fires_no_old_backup() -> None:
    old = year_old()
    for baseline in ([], old[-10:]):
        mark = advance(None, baseline, now=T0).mark
        assert advance(mark, old).fire == []


def test_a_graph_rebuilt_under_the_watched_name_fires_no_old_backup() -> None:
    """A by-name watcher: the graph is rebuilt under its name (the old one's backups drop out of
    the listing), later deleted; the project-wide fallback listing shows the old graph's year-old
    ``auto`` backups again. They existed at the baseline: none fires."""
    name = "movies"

    def listing(*backups: Backup) -> list[Backup]:
        return watched(backups, graph_name=name)

    old = year_old(method="auto", graph="g-old", graph_name=name)
    mark = advance(None, listing(*old), now=T0).mark
    fired: list[str] = []
    new: list[Backup] = []
    for n in range(100):  # the new graph makes a backup an hour
        running = backup(f"new{n}", "backing_up", start=60 * n, graph="g-new", graph_name=name)
        for shown in (
            [*new, running],
            [*new, backup(f"new{n}", start=60 * n, graph="g-new", graph_name=name)],
        ):
            step = advance(mark, listing(*shown))
            fired += ids(step.fire)
            mark = step.mark
        new.append(shown[-1])
    assert fired == [f"new{n}" for n in range(100)]  # each once
    assert len(set(mark.reported) & {b.id for b in old}) < len(old)  # some old ids forgotten
    # the new graph deleted: the fallback project-wide listing, filtered by name
    fallback = advance(mark, listing(*old, *new, backup("other", graph="g2", graph_name="other")))
    assert fallback.fire == []
    assert advance(fallback.mark, listing(*old)).fire == []


def test_the_watermark_stays_bounded_as_backups_come_and_go() -> None:
    mark = advance(None, [], now=T0).mark
    for n in range(KEEP_GONE * 2):
        step = advance(mark, [backup(f"b{n}", start=n)])  # each listing shows only the newest
        assert ids(step.fire) == [f"b{n}"]
        mark = step.mark
    assert len(mark.reported) == KEEP_GONE + 1  # the listed one and the most recent gone ones
    assert mark.reported[-1] == f"b{KEEP_GONE * 2 - 1}"
    assert "b0" not in mark.reported


def test_waiting_ids_leave_when_they_end_and_stay_bounded_when_gone() -> None:
    mark = advance(None, [backup("r", "backing_up"), backup("d", "backing_up")], now=T0).mark
    assert mark.waiting == ("r", "d")
    step = advance(mark, [backup("r", "backing_up"), backup("d", "failed")])
    assert step.fire == [] and step.mark.waiting == ("r",)  # failed: no longer waiting
    for n in range(KEEP_GONE * 2):  # running ones that vanish (deleted while running)
        mark = advance(mark, [backup(f"w{n}", "backing_up", start=n)]).mark
    assert len(mark.waiting) == KEEP_GONE + 1 and mark.waiting[-1] == f"w{KEEP_GONE * 2 - 1}"
    # one forgotten while waiting still fires by its end time
    assert "w0" not in mark.waiting
    assert ids(advance(mark, [backup("w0", start=0)]).fire) == ["w0"]


def test_failed_watcher_fires_failures_only() -> None:
    mark = advance(
        None, [backup("f0", "failed", start=-10), backup("r", "backing_up")], status="failed", now=T0
    )
    listing = [backup("f0", "failed", start=-10), backup("f1", "failed"), backup("s1"), backup("r")]
    step = advance(mark.mark, listing, status="failed")
    assert ids(step.fire) == ["f1"]
    assert step.mark.waiting == ()  # "r" succeeded: final, never a failure


def test_state_round_trip_and_unreadable_states() -> None:
    mark = Watermark(("a", "b"), T0, waiting=("c",), pinned=("a",))
    state = mark.to_state()
    assert state == {"v": 1, "since_ms": ms(T0), "reported": ["a", "b"], "waiting": ["c"], "pinned": ["a"]}
    assert Watermark.from_state(state) == mark
    assert Watermark.from_state({"v": 1, "reported": ["a"]}) == Watermark(("a",), None)
    garbage: list[Any] = [None, "x", [], {}, {"v": 2, "reported": []}, {"v": 1, "reported": [1]}]
    garbage += [{"v": 1, "reported": [], "waiting": "c"}, {"v": 1, "reported": [], "pinned": [None]}]
    for value in garbage:
        assert Watermark.from_state(value) is None
    assert Watermark.from_state({"v": 1, "reported": [], "since_ms": 10**20}) == Watermark((), None)
    year_one = -62135596800000  # 0001-01-01: no room for the clock slack
    assert Watermark.from_state({"v": 1, "reported": [], "since_ms": year_one}) == Watermark((), None)


def test_a_state_stored_by_the_previous_version_still_loads() -> None:
    # no "waiting", no "pinned": both empty, the same version
    stored = {"v": 1, "since_ms": ms(T0), "reported": ["old000", "old001"]}
    mark = Watermark.from_state(stored)
    assert mark == Watermark(("old000", "old001"), T0)
    step = advance(mark, [*year_old(), backup("new", start=1)])
    assert ids(step.fire) == ["new"]  # year-old ids it never reported: held back by the baseline
    # older still, no "since_ms": ids only, as that version did
    idonly = Watermark.from_state({"v": 1, "reported": ["old000"]})
    assert idonly is not None and idonly.since is None
    assert ids(advance(idonly, year_old(2)).fire) == ["old001"]


def test_state_store_absent_means_a_baseline() -> None:
    # The trigger reads no state (no store on Airflow 3.1/3.2, or nothing stored yet): None, so the
    # next listing is a baseline that fires nothing, whatever it holds.
    assert Watermark.merge([]) is None
    assert Watermark.merge([None, None]) is None
    step = advance(Watermark.merge([]), [backup("a"), backup("b", start=3)])
    assert step.baseline and step.fire == []


def test_merge_of_several_assets_stores() -> None:
    later = T0 + timedelta(hours=1)
    merged = Watermark.merge(
        [
            Watermark(("a",), later, waiting=("w", "b")),
            None,
            Watermark(("b", "a"), T0, waiting=("x",), pinned=("b",)),
        ]
    )
    assert merged == Watermark(("a", "b"), T0, waiting=("w", "x"), pinned=("b",))


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


# A life of a backup: (created, minutes running, final status, method), in minutes from the baseline.
_life = st.tuples(
    st.integers(-6, 6),
    st.integers(0, 5),
    st.sampled_from(["success", "failed"]),
    st.sampled_from(["auto", "manual", "import"]),
)


@settings(max_examples=300, deadline=None)
@given(
    lives=st.lists(_life, min_size=1, max_size=25),
    shown=st.lists(st.one_of(st.none(), st.sets(st.integers(0, 24))), min_size=1, max_size=10),
    watch=st.sampled_from(["success", "failed"]),
    cap=st.sampled_from([1, 3, KEEP_GONE]),
)
def test_repeated_listings_fire_each_new_backup_once_and_no_old_one(
    lives: list[tuple[int, int, str, str]], shown: list[set[int] | None], watch: str, cap: int
) -> None:
    """Backups are created and end at random around the baseline (a minute), and each later
    listing (a minute apart) shows them all (None) or any subset (empty, short, a stale fallback).
    Whatever the listings: no backup that had ended at the baseline fires; every one that ends
    after it, and that a listing shows ended, fires; none fires twice (unless the memory of gone
    ids is smaller than the number of backups: then a repeat, never an old one or a miss)."""

    def at(t: int) -> list[Backup]:
        listing = []
        for n, (created, runs, final, method) in enumerate(lives):
            if created > t:
                continue
            ended = created + runs + 0.5  # never exactly at a listing
            status = final if ended < t else "backing_up"
            shift = -2 * YEAR if method == "import" else 0  # an import carries old times
            listing.append(backup(f"b{n}", status, start=created + shift, end=runs + 0.5, method=method))
        return listing

    old = {f"b{n}" for n, (c, r, final, _) in enumerate(lives) if final == watch and c + r + 0.5 < 0}
    new = {f"b{n}" for n, (c, r, final, _) in enumerate(lives) if final == watch and c + r + 0.5 > 0}
    fired: list[str] = []
    seen_ended: set[str] = set()
    with mock.patch.object(watermark, "KEEP_GONE", cap):
        step = advance(None, at(0), status=watch, now=T0)  # the baseline shows them all
        for t, which in enumerate(shown, start=1):
            listing = at(t)
            if which is not None:
                listing = [b for b in listing if int(b.id[1:]) in which]
            step = advance(step.mark, listing, status=watch)
            fired += ids(step.fire)
            seen_ended |= {b.id for b in listing if b.status == watch}
            state = step.mark.to_state()
            assert Watermark.from_state(state) == step.mark  # what a restart reads back
    assert not old & set(fired)
    assert set(fired) == new & seen_ended
    if cap >= len(lives):
        assert len(fired) == len(set(fired))
