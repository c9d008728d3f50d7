"""Paging that loses nothing: insertions and removals while paging, hostile servers, bounded work.

The invariant checked everywhere: every backup that is listed for the whole listing is returned
exactly once, nothing is returned twice, and the number of requests is bounded. A static listing of
N backups costs exactly 1 + ceil((N - page_size) / (page_size - 1)) list requests (pages start at
the last item of the page before), each asking ``limit=page_size``: never more (servers cap it).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_ges.emulator import GesEmulator, Hostile
from airflow_provider_ges.exceptions import GesApiError
from airflow_provider_ges.hooks.ges import GesHook
from airflow_provider_ges.models import BackupPage
from airflow_provider_ges.paging import Pager
from tests.helpers import BACKUPS_URL, TOKEN_URL, backup, token_reply

# --- an in-process listing and a driver that sends what the pager asks for --------------------


class Listing:
    """A mutable backup listing served with offset/limit, like GES."""

    def __init__(self, n: int) -> None:
        self.ids = [f"b-{i:05d}" for i in range(n)]
        self.next_id = n
        self.ever: set[str] = set(self.ids)
        self.removed: set[str] = set()
        self.calls: list[tuple[int, int]] = []

    def page(self, offset: int, limit: int) -> BackupPage:
        self.calls.append((offset, limit))
        return BackupPage.model_validate(
            {
                "backupCount": len(self.ids),
                "backupList": [{"id": i} for i in self.ids[offset : offset + limit]],
            }
        )

    def insert(self, position: int) -> None:
        new = f"n-{self.next_id:05d}"
        self.next_id += 1
        self.ids.insert(max(0, min(position, len(self.ids))), new)
        self.ever.add(new)

    def remove(self, position: int) -> None:
        if self.ids:
            self.removed.add(self.ids.pop(max(0, min(position, len(self.ids) - 1))))

    def throughout(self, initial: set[str]) -> set[str]:
        """The backups listed from start to end of the listing."""
        return initial - self.removed


def drain(
    pager: Pager,
    listing: Listing,
    between: Callable[[int], None] | None = None,
) -> list[str]:
    """Page to the end; ``between(n)`` mutates the listing after the n-th request."""
    got: list[str] = []
    while pager.offset is not None:
        assert len(listing.calls) < 10_000, "unbounded paging"
        got += [b.id for b in pager.feed(listing.page(pager.offset, pager.page_size))]
        if between is not None:
            between(len(listing.calls))
    return got


def most_pages(n: int, page_size: int) -> int:
    """The pager's bound: twice the first backupCount, in pages that overlap by one, plus 5."""
    return math.ceil(2 * n / max(1, page_size - 1)) + 5


def assert_nothing_lost(got: list[str], listing: Listing, initial: set[str]) -> None:
    assert len(got) == len(set(got)), "a backup was returned twice"
    missing = listing.throughout(initial) - set(got)
    assert not missing, f"skipped backups that were listed throughout: {sorted(missing)[:5]}"
    assert set(got) <= listing.ever


# --- static listings: the request count of the benchmark ---------------------------------------


def static_cost(n: int, page_size: int) -> int:
    """Requests for a static listing of n: the first page, then page_size - 1 new items per page."""
    return 1 + max(0, math.ceil((n - page_size) / (page_size - 1)))


@pytest.mark.parametrize("page_size", [2, 7, 10, 100])
@pytest.mark.parametrize("n", [0, 1, 2, 9, 10, 11, 99, 100, 101, 250, 2500])
def test_static_listing_cost_and_limit_never_above_page_size(n: int, page_size: int) -> None:
    listing = Listing(n)
    got = drain(Pager(page_size), listing)
    assert got == listing.ids  # in server order, each once
    assert len(listing.calls) == static_cost(n, page_size)
    assert {limit for _, limit in listing.calls} == {page_size}


@pytest.mark.parametrize(("n", "page_size"), [(0, 5), (9, 10), (31, 10), (2500, 100)])
def test_static_listing_without_backup_count(n: int, page_size: int) -> None:
    ids = [f"b-{i:05d}" for i in range(n)]
    calls = 0
    pager, got = Pager(page_size), []
    while pager.offset is not None:
        calls += 1
        items = [{"id": i} for i in ids[pager.offset : pager.offset + pager.page_size]]
        got += [b.id for b in pager.feed(BackupPage.model_validate({"backupList": items}))]
    assert got == ids
    # without a total a page of exactly page_size new items may need one more look
    assert calls <= static_cost(n, page_size) + 1


# --- changes while paging ------------------------------------------------------------------------


def test_removal_on_a_page_already_read_skips_nothing() -> None:
    """The bug: a removal before the offset shifts the rest left; offset paging skipped one."""
    listing = Listing(30)
    initial = set(listing.ids)

    def remove_early(n: int) -> None:
        if n == 1:
            listing.remove(3)  # on the page just read

    got = drain(Pager(10), listing, remove_early)
    assert_nothing_lost(got, listing, initial)
    assert len(listing.calls) <= 3 + 2  # the shift costs a look back, not a re-listing


def test_rotation_new_at_the_end_oldest_removed_skips_nothing() -> None:
    """What a backup policy does: one new backup appended, the oldest deleted; the count stays."""
    listing = Listing(95)
    initial = set(listing.ids)

    def rotate(n: int) -> None:
        listing.insert(len(listing.ids))
        listing.remove(0)

    got = drain(Pager(10), listing, rotate)
    assert_nothing_lost(got, listing, initial)
    assert len(listing.calls) <= 2 * math.ceil(95 / 10)


def test_insertions_at_the_head_return_each_once() -> None:
    listing = Listing(50)
    initial = set(listing.ids)
    got = drain(Pager(10), listing, lambda n: listing.insert(0))
    assert_nothing_lost(got, listing, initial)


def test_anchor_itself_removed() -> None:
    listing = Listing(30)
    initial = set(listing.ids)

    def remove_anchor(n: int) -> None:
        if n == 1:
            listing.remove(9)  # the last item of the first page: the next page starts there

    got = drain(Pager(10), listing, remove_anchor)
    assert_nothing_lost(got, listing, initial)


def test_mass_removal_before_the_offset_is_found_by_stepping_back() -> None:
    listing = Listing(300)
    initial = set(listing.ids)

    def purge(n: int) -> None:
        if n == 5:
            for _ in range(120):
                listing.remove(10)

    got = drain(Pager(20), listing, purge)
    assert_nothing_lost(got, listing, initial)
    assert len(listing.calls) <= math.ceil(300 / 20) + 6  # a few looks back (doubling), not O(n)


def test_everything_removed_mid_listing_ends() -> None:
    listing = Listing(50)
    initial = set(listing.ids)

    def wipe(n: int) -> None:
        if n == 2:
            listing.ids.clear()
            listing.removed |= initial

    got = drain(Pager(10), listing, wipe)
    assert_nothing_lost(got, listing, initial)
    assert len(listing.calls) <= 6


OPS = st.lists(
    st.tuples(st.sampled_from(["head", "end", "anywhere", "remove"]), st.floats(0, 1)),
    max_size=2,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(0, 80),
    page_size=st.integers(2, 12),
    churn=st.lists(OPS, max_size=40),
)
def test_any_insertions_and_removals_lose_nothing(
    n: int, page_size: int, churn: list[list[tuple[str, float]]]
) -> None:
    """Random churn between pages: every backup listed throughout comes back exactly once, or the
    pager says the listing did not end (when the listing grows as fast as it is read)."""
    listing = Listing(n)
    initial = set(listing.ids)

    def mutate(call: int) -> None:
        for kind, where in churn[call - 1] if call <= len(churn) else []:
            if kind == "remove":
                listing.remove(int(where * len(listing.ids)))
            else:
                position = {"head": 0, "end": len(listing.ids)}.get(kind, int(where * len(listing.ids)))
                listing.insert(position)

    pager = Pager(page_size)
    try:
        got = drain(pager, listing, mutate)
    except GesApiError as err:
        assert "did not end" in str(err) or "as fast as they are read" in str(err)
        inserted = len(listing.ever) - n
        assert inserted * 2 >= page_size or inserted >= n, "gave up on a listing that was ending"
        assert len(listing.calls) <= most_pages(n, page_size)
        return
    assert_nothing_lost(got, listing, initial)
    assert len(listing.calls) <= most_pages(n, page_size)


@settings(max_examples=100, deadline=None)
@given(n=st.integers(1, 300), page_size=st.integers(3, 50), seed=st.integers(0, 2**32))
def test_mild_churn_always_completes(n: int, page_size: int, seed: int) -> None:
    """At most one insertion or removal between two pages: the listing always completes."""
    rng = random.Random(seed)
    listing = Listing(n)
    initial = set(listing.ids)

    def mutate(call: int) -> None:
        roll = rng.random()
        if roll < 0.25:
            listing.insert(rng.randrange(len(listing.ids) + 1))
        elif roll < 0.5:
            listing.remove(rng.randrange(max(1, len(listing.ids))))

    got = drain(Pager(page_size), listing, mutate)
    assert_nothing_lost(got, listing, initial)


# --- hostile servers: bounded work, then a clear error or a correct result -----------------------


def test_same_page_whatever_the_offset_is_a_clear_error() -> None:
    listing = Listing(40)
    pager, calls = Pager(10), 0
    with pytest.raises(GesApiError, match="ignores 'offset'"):
        while pager.offset is not None:
            calls += 1
            pager.feed(listing.page(0, pager.page_size))
    assert calls == 3  # once may be new backups at the head; twice is the server


def test_backup_count_growing_forever_is_bounded() -> None:
    pager, calls = Pager(10), 0
    with pytest.raises(GesApiError, match="did not end"):
        while pager.offset is not None:
            calls += 1
            offset = pager.offset
            items = [{"id": f"b-{offset + i}"} for i in range(pager.page_size)]
            pager.feed(BackupPage.model_validate({"backupCount": offset + 1000, "backupList": items}))
    assert calls == most_pages(1000, 10)


def test_page_larger_than_asked_is_used_not_trusted_blindly() -> None:
    ids = [f"b-{i}" for i in range(57)]
    pager, got, calls = Pager(10), [], 0
    while pager.offset is not None:
        calls += 1
        items = [{"id": i} for i in ids[pager.offset : pager.offset + pager.page_size + 7]]
        got += [b.id for b in pager.feed(BackupPage.model_validate({"backupCount": 57, "backupList": items}))]
    assert got == ids
    assert calls <= static_cost(57, 10)


def test_duplicate_ids_inside_one_page_come_back_once() -> None:
    pager = Pager(10)
    page = BackupPage.model_validate(
        {"backupCount": 3, "backupList": [{"id": "a"}, {"id": "a"}, {"id": "b"}]}
    )
    assert [b.id for b in pager.feed(page)] == ["a", "b"]
    assert pager.offset is None


@pytest.mark.parametrize("bad", [0, 1, -1, 1.5, "10", None, True])
def test_page_size_must_be_an_integer_of_at_least_two(bad: Any) -> None:
    with pytest.raises(ValueError, match=f"page_size must be an integer of at least 2, got {bad!r}"):
        Pager(bad)


# --- the same through GesHook and the emulator ---------------------------------------------------


def fast_hook() -> GesHook:
    return GesHook(retry_base_delay=0.0)


def test_hook_removal_while_paging_requests_mock(ges_conn: Any, requests_mock: Any) -> None:
    """Through the real hook: a backup deleted from a page already read; none skipped."""
    requests_mock.post(TOKEN_URL, **token_reply())
    items = [backup(n) for n in range(40)]
    initial = {i["id"] for i in items}
    removed: set[str] = set()

    def serve(request: Any, context: Any) -> dict[str, Any]:
        offset, limit = int(request.qs["offset"][0]), int(request.qs["limit"][0])
        page = {"backupCount": len(items), "backupList": items[offset : offset + limit]}
        if len(removed) < 3:
            removed.add(items.pop(2)["id"])  # the oldest but two goes after each page
        return page

    requests_mock.get(BACKUPS_URL, json=serve)
    ids = [b.id for b in fast_hook().iter_backups(page_size=10)]
    assert len(ids) == len(set(ids))
    assert initial - removed <= set(ids)


def test_hook_insert_at_head_and_remove_while_paging(ges_conn: Any, requests_mock: Any) -> None:
    requests_mock.post(TOKEN_URL, **token_reply())
    items = [backup(n) for n in range(60)]
    initial = {i["id"] for i in items}
    removed: set[str] = set()
    fresh = iter(range(1000, 2000))

    def serve(request: Any, context: Any) -> dict[str, Any]:
        offset, limit = int(request.qs["offset"][0]), int(request.qs["limit"][0])
        page = {"backupCount": len(items), "backupList": items[offset : offset + limit]}
        items.insert(0, backup(next(fresh)))  # newest first: new backups arrive at the head
        items.insert(0, backup(next(fresh)))
        removed.add(items.pop(len(items) // 3)["id"])  # and one somewhere goes away
        return page

    requests_mock.get(BACKUPS_URL, json=serve)
    ids = [b.id for b in fast_hook().iter_backups(page_size=10)]
    assert len(ids) == len(set(ids))
    assert initial - removed <= set(ids)


@pytest.mark.ges_emulator(graphs=2, backups=250, seed=5)
def test_emulator_rotation_while_paging(ges_connection: GesEmulator) -> None:
    """On the emulator (newest last): after each page one backup is added and the oldest deleted."""
    emu = ges_connection
    graph = emu.graphs()[0]["name"]
    initial = [b["id"] for b in emu.backups()]
    removed: set[str] = set()
    seen_requests = 0
    got: list[str] = []
    for b in fast_hook().iter_backups(page_size=50):
        got.append(b.id)
        if emu.counters["list_backups"] != seen_requests:  # a page came: change the listing now
            seen_requests = emu.counters["list_backups"]
            emu.add_backup(graph)
            oldest = emu.backups()[0]["id"]
            emu.remove_backup(oldest)
            removed.add(oldest)
    assert len(got) == len(set(got))
    assert set(initial) - removed <= set(got)
    assert emu.counters["list_backups"] <= 2 * math.ceil(250 / 50)


def _list_ids() -> list[str]:
    return [b.id for b in fast_hook().iter_backups(page_size=100)]


@pytest.mark.ges_emulator(graphs=3, backups=250, seed=2)
def test_emulator_ignoring_offset_is_a_clear_error(ges_connection: GesEmulator) -> None:
    ges_connection.set_hostile(ignore_offset=True)
    with pytest.raises(GesApiError, match="ignores 'offset'"):
        _list_ids()
    assert ges_connection.counters["list_backups"] == 3


@pytest.mark.ges_emulator(graphs=3, backups=250, seed=2)
@pytest.mark.parametrize(
    "hostile",
    [Hostile(grow_count=True), Hostile(inflate_count=1000), Hostile(oversize_pages=37)],
    ids=["grow_count", "inflate_count", "oversize_pages"],
)
def test_emulator_hostile_counts_and_sizes_give_the_exact_listing(
    ges_connection: GesEmulator, hostile: Hostile
) -> None:
    expected = [b["id"] for b in ges_connection.backups()]
    ges_connection.set_hostile(hostile)
    assert _list_ids() == expected
    assert ges_connection.counters["list_backups"] <= math.ceil(250 / 100) + 2


@pytest.mark.ges_emulator(graphs=3, backups=250, seed=2)
def test_emulator_all_hostile_at_once_is_bounded(ges_connection: GesEmulator) -> None:
    ges_connection.set_hostile(ignore_offset=True, grow_count=True, inflate_count=10_000, oversize_pages=5)
    with pytest.raises(GesApiError):
        _list_ids()
    assert ges_connection.counters["list_backups"] <= 2 * math.ceil(10_250 / 100) + 5


@pytest.mark.ges_emulator(graphs=3, backups=2_500, seed=2)
def test_hook_static_listing_cost(ges_connection: GesEmulator) -> None:
    import asyncio

    from airflow_provider_ges.hooks.ges import GesAsyncHook

    assert len(_list_ids()) == 2_500
    assert ges_connection.counters["list_backups"] == static_cost(2_500, 100) == 26

    async def alist() -> int:
        async with GesAsyncHook() as hook:
            return len(await hook.list_backups(page_size=100))

    assert asyncio.run(alist()) == 2_500
    assert ges_connection.counters["list_backups"] == 26 + 26
