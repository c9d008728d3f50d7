"""GesBackupEventTrigger on a real event loop against the emulator: what fires, and across restarts.

A "restart" here is what a triggerer restart does to a watcher: its task is cancelled and a new
instance is built from ``serialize()``, with the same asset state store (Airflow >= 3.3, faked here
by ``FakeStore``) or none (3.1/3.2: memory only).
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_ges._compat import HAS_SHARED_STREAMS, asset_state_accessors
from airflow_provider_ges.emulator import GesEmulator
from airflow_provider_ges.triggers.ges import BackupListing, GesBackupEventTrigger

POLL = 0.05
START = datetime.now(timezone.utc) - timedelta(hours=2)

pytestmark = pytest.mark.ges_emulator(graphs=0, backups=0)


class FakeStore:
    """An asset state store: JSON values by key, like the 3.3 accessor's ``aget``/``aset``."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.writes = 0
        self.fail_reads = 0

    async def aget(self, key: str, default: Any = None) -> Any:
        if self.fail_reads:
            self.fail_reads -= 1
            raise RuntimeError("state store unavailable")
        return copy.deepcopy(self.data.get(key, default))

    async def aset(self, key: str, value: Any) -> None:
        self.data[key] = json.loads(json.dumps(value))
        self.writes += 1


class Watcher:
    """A trigger running in a task on the current loop, its events collected."""

    def __init__(self, trigger: GesBackupEventTrigger) -> None:
        self.trigger = trigger
        self.events: list[dict[str, Any]] = []
        self.task = asyncio.create_task(self._collect())

    async def _collect(self) -> None:
        async for event in self.trigger.run():
            self.events.append(event.payload)

    @property
    def ids(self) -> list[str]:
        return [e["id"] for e in self.events]

    async def stop(self) -> None:
        self.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self.task


def make(store: FakeStore | None = None, **kwargs: Any) -> GesBackupEventTrigger:
    kwargs.setdefault("graph_name", "movies")
    trig = GesBackupEventTrigger(poll_interval=POLL, **kwargs)
    trig.asset_state_store = store  # what the 3.3 triggerer injects (None: 3.1/3.2)
    return trig


def restarted(trig: GesBackupEventTrigger, store: FakeStore | None) -> GesBackupEventTrigger:
    """The trigger a restarted triggerer builds: from serialize(), given the asset's store."""
    classpath, kwargs = trig.serialize()
    assert classpath == "airflow_provider_ges.triggers.ges.GesBackupEventTrigger"
    new = GesBackupEventTrigger(**kwargs)
    new.asset_state_store = store
    return new


async def polls(emu: GesEmulator, n: int = 3, timeout: float = 10.0) -> None:
    """Wait until the emulator served ``n`` more backup listings (of any trigger)."""
    start = emu.counters["list_graph_backups"] + emu.counters["list_backups"]
    deadline = asyncio.get_running_loop().time() + timeout
    while emu.counters["list_graph_backups"] + emu.counters["list_backups"] < start + n:
        assert asyncio.get_running_loop().time() < deadline, "the trigger stopped polling"
        await asyncio.sleep(POLL / 4)


def run(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), 60))


@pytest.fixture(autouse=True)
def _no_commit_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(GesBackupEventTrigger, "commit_delay", 0.0)


@pytest.fixture
def emu(ges_connection: GesEmulator) -> GesEmulator:
    ges_connection.add_graph("movies")
    ges_connection.add_graph("other")
    for n in range(3):
        ges_connection.add_backup("movies", status="success", start=START + timedelta(minutes=n))
    ges_connection.add_backup("movies", status="failed", start=START + timedelta(minutes=5))
    return ges_connection


def test_serialize_carries_the_conn_id_and_settings_never_a_token() -> None:
    trig = GesBackupEventTrigger(graph_name="movies", backup_method="auto", ges_conn_id="my_ges")
    classpath, kwargs = trig.serialize()
    assert kwargs == {
        "graph_id": None,
        "graph_name": "movies",
        "backup_method": "auto",
        "status": "success",
        "ges_conn_id": "my_ges",
        "poll_interval": 60.0,
    }
    json.dumps(kwargs)
    assert GesBackupEventTrigger(**kwargs).serialize() == (classpath, kwargs)
    assert "token" not in repr(trig).lower()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "give graph_id or graph_name"),
        ({"graph_name": "g", "backup_method": "hourly"}, "backup_method must be one of"),
        ({"graph_name": "g", "status": "backing_up"}, "status must be 'success' or 'failed'"),
        ({"graph_name": "g", "status": "sucess"}, "status must be one of"),
        ({"graph_name": "g", "poll_interval": 0}, "poll_interval must be positive"),
    ],
)
def test_bad_arguments_fail_at_construction(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GesBackupEventTrigger(**kwargs)


def test_is_an_event_trigger_and_shares_by_graph_and_connection() -> None:
    from airflow.triggers.base import BaseEventTrigger

    a = GesBackupEventTrigger(graph_name="movies", poll_interval=30)
    b = GesBackupEventTrigger(graph_name="movies", backup_method="auto", poll_interval=30)
    assert isinstance(a, BaseEventTrigger)
    if not HAS_SHARED_STREAMS:
        assert a.shared_stream_key() is None  # 3.1/3.2: each trigger polls alone
        return
    assert a.shared_stream_key() == b.shared_stream_key()  # one poll, filtered per trigger
    for other in (
        GesBackupEventTrigger(graph_name="other", poll_interval=30),
        GesBackupEventTrigger(graph_name="movies", ges_conn_id="ges_other", poll_interval=30),
        GesBackupEventTrigger(graph_name="movies", poll_interval=60),
        GesBackupEventTrigger(graph_id="movies", poll_interval=30),
    ):
        assert other.shared_stream_key() != a.shared_stream_key()
    assert a.state_key != b.state_key  # one asset may hold both watermarks


@pytest.mark.parametrize("durable", [True, False], ids=["state-store", "memory"])
def test_existing_backups_never_fire_and_each_new_success_fires_once(emu: GesEmulator, durable: bool) -> None:
    async def scenario() -> None:
        store = FakeStore() if durable else None
        w = Watcher(make(store))
        await polls(emu)
        assert w.events == []  # three old successes, one old failure: nothing
        new = emu.add_backup("movies", status="success")
        emu.add_backup("other", status="success")  # another graph
        await polls(emu)
        assert w.ids == [new["id"]]
        event = w.events[0]
        assert event["status"] == "success" and event["graph_name"] == "movies"
        assert event == {k: v for k, v in emu.backup(new["id"]).items() if v is not None}
        await polls(emu)
        assert w.ids == [new["id"]]  # seen again: not again
        await w.stop()
        if store is not None:
            assert store.writes >= 2  # the baseline, then the report

    run(scenario)


def test_a_backing_up_backup_fires_when_it_succeeds_and_a_failure_fires_nothing(emu: GesEmulator) -> None:
    async def scenario() -> None:
        w = Watcher(make(FakeStore()))
        running = emu.add_backup("movies", status="backing_up")
        doomed = emu.add_backup("movies", status="backing_up")
        await polls(emu)
        assert w.events == []
        emu.set_backup_status(doomed["id"], "failed")
        await polls(emu)
        assert w.events == []
        emu.set_backup_status(running["id"], "success")
        await polls(emu)
        assert w.ids == [running["id"]] and w.events[0]["endTimestamp"] is not None
        await w.stop()

    run(scenario)


def test_a_failure_watcher_fires_failures_only(emu: GesEmulator) -> None:
    async def scenario() -> None:
        w = Watcher(make(FakeStore(), status="failed"))
        await polls(emu)
        failed = emu.add_backup("movies", status="failed")
        emu.add_backup("movies", status="success")
        await polls(emu)
        assert w.ids == [failed["id"]] and w.events[0]["status"] == "failed"
        await w.stop()

    run(scenario)


def test_backup_method_filter(emu: GesEmulator) -> None:
    async def scenario() -> None:
        w = Watcher(make(None, backup_method="auto"))
        await polls(emu)
        emu.add_backup("movies", status="success", method="manual")
        auto = emu.add_backup("movies", status="success", method="auto")
        await polls(emu)
        assert w.ids == [auto["id"]]
        await w.stop()

    run(scenario)


def test_restart_with_the_state_store_is_exactly_once(emu: GesEmulator) -> None:
    """3.3: a backup that succeeds while the triggerer is down fires once after the restart; the
    ones reported before do not fire again; the old successes never do."""

    async def scenario() -> None:
        store = FakeStore()
        first = Watcher(make(store))
        await polls(emu)
        before = emu.add_backup("movies", status="success")
        running = emu.add_backup("movies", status="backing_up")
        await polls(emu)
        assert first.ids == [before["id"]]
        await first.stop()  # SIGKILL: the task just ends
        emu.set_backup_status(running["id"], "success")  # while down
        during = emu.add_backup("movies", status="success")  # while down
        second = Watcher(restarted(first.trigger, store))
        await polls(emu)
        assert sorted(second.ids) == sorted([running["id"], during["id"]])
        await second.stop()
        third = Watcher(restarted(first.trigger, store))  # and again: nothing new, nothing fires
        await polls(emu)
        assert third.events == []
        await third.stop()

    run(scenario)


def test_restart_without_a_state_store_takes_a_new_baseline(emu: GesEmulator) -> None:
    """3.1/3.2 (memory only): the first poll after a restart is a new baseline, so a backup that
    succeeded while the triggerer was down does not fire, and none fires twice."""

    async def scenario() -> None:
        first = Watcher(make(None))
        await polls(emu)
        before = emu.add_backup("movies", status="success")
        await polls(emu)
        assert first.ids == [before["id"]]
        await first.stop()
        emu.add_backup("movies", status="success")  # while down: lost to the new baseline
        second = Watcher(restarted(first.trigger, None))
        await polls(emu)
        assert second.events == []
        after = emu.add_backup("movies", status="success")
        await polls(emu)
        assert second.ids == [after["id"]]
        await second.stop()

    run(scenario)


def test_a_kill_before_the_watermark_is_stored_repeats_rather_than_loses(
    emu: GesEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The watermark is stored ``commit_delay`` after firing (once the event is persisted): a kill
    inside that window fires the backup again after the restart; it is never lost."""
    monkeypatch.setattr(GesBackupEventTrigger, "commit_delay", 30.0)

    async def scenario() -> None:
        store = FakeStore()
        first = Watcher(make(store))
        await polls(emu)
        new = emu.add_backup("movies", status="success")
        while not first.events:
            await asyncio.sleep(POLL / 4)
        await first.stop()  # killed inside the commit delay
        monkeypatch.setattr(GesBackupEventTrigger, "commit_delay", 0.0)
        second = Watcher(restarted(first.trigger, store))
        await polls(emu)
        assert first.ids == second.ids == [new["id"]]
        await second.stop()

    run(scenario)


def test_an_unreadable_store_fires_nothing_until_it_reads(emu: GesEmulator) -> None:
    async def scenario() -> None:
        store = FakeStore()
        first = Watcher(make(store))
        await polls(emu)
        await first.stop()
        new = emu.add_backup("movies", status="success")
        store.fail_reads = 3
        second = Watcher(restarted(first.trigger, store))
        await polls(emu, 2)
        assert second.events == []  # not knowing what was reported: no baseline, no guess
        await polls(emu, 4)
        assert second.ids == [new["id"]]
        await second.stop()

    run(scenario)


def test_a_garbled_stored_watermark_is_a_new_baseline(emu: GesEmulator) -> None:
    async def scenario() -> None:
        store = FakeStore()
        trig = make(store)
        store.data[trig.state_key] = {"v": 99}
        w = Watcher(trig)
        await polls(emu)
        assert w.events == []
        assert store.data[trig.state_key]["v"] == 1
        await w.stop()

    run(scenario)


def test_a_failing_poll_is_logged_and_retried(emu: GesEmulator, capsys: pytest.CaptureFixture[str]) -> None:
    """No such graph id yet (404): logged at each poll, never the end of the watcher; once the graph
    exists, its backups fire. An id needs no graph look-up."""

    async def scenario() -> None:
        w = Watcher(make(FakeStore(), graph_id="graph-made-later", graph_name=None))
        await polls(emu)
        emu.add_graph("late", graph_id="graph-made-later")
        await polls(emu)
        new = emu.add_backup("late", status="success")
        await polls(emu)
        assert w.ids == [new["id"]]
        await w.stop()

    run(scenario)
    out = capsys.readouterr().out
    assert "Cannot list the backups of graph id 'graph-made-later'; will poll again" in out
    assert emu.counters["list_graphs"] == 0


def test_a_graph_name_is_looked_up_once(emu: GesEmulator) -> None:
    async def scenario() -> None:
        w = Watcher(make(None))
        await polls(emu, 5)
        await w.stop()

    run(scenario)
    assert emu.counters["list_graphs"] == 1 and emu.counters["list_backups"] == 0


def test_several_assets_share_the_watermark(emu: GesEmulator) -> None:
    """A trigger watching two assets (3.3 gives it one accessor each) stores its watermark in both."""

    class Accessors:
        def __init__(self, **stores: FakeStore) -> None:
            self._by_name = stores
            self._by_uri: dict[str, FakeStore] = {}

    async def scenario() -> None:
        a, b = FakeStore(), FakeStore()
        trig = make(None)
        trig.asset_state_store = Accessors(a=a, b=b)  # type: ignore[assignment]
        assert asset_state_accessors(trig) == [a, b]
        w = Watcher(trig)
        await polls(emu)
        await w.stop()
        assert a.data == b.data and a.data[trig.state_key]["reported"]

    run(scenario)


@pytest.mark.skipif(not HAS_SHARED_STREAMS, reason="shared streams are Airflow >= 3.3")
def test_shared_stream_one_poll_for_many_watchers(emu: GesEmulator) -> None:
    """Through Airflow's SharedStreamManager (what the 3.3 triggerer runs): watchers of one graph
    share one listing per interval, each firing for its own backups."""
    from airflow.triggers.shared_stream import SharedStreamManager

    async def scenario() -> None:
        manager = SharedStreamManager()
        triggers = {
            1: make(FakeStore()),
            2: make(FakeStore()),
            3: make(FakeStore(), backup_method="auto"),
            4: make(None, graph_name="other"),
        }
        events: dict[int, list[str]] = {i: [] for i in triggers}

        async def consume(i: int, trig: GesBackupEventTrigger) -> None:
            key = trig.shared_stream_key()
            stream = manager.subscribe(trigger_id=i, trigger=trig, key=key)
            try:
                async for event in trig.filter_shared_stream(stream):
                    events[i].append(event.payload["id"])
            finally:
                await manager.unsubscribe(i, key)

        tasks = [asyncio.create_task(consume(i, t)) for i, t in triggers.items()]
        await polls(emu, 6)
        emu.reset_counters()
        manual = emu.add_backup("movies", status="success", method="manual")
        auto = emu.add_backup("movies", status="success", method="auto")
        other = emu.add_backup("other", status="success")
        await asyncio.sleep(POLL * 10)
        listings = emu.counters["list_graph_backups"]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await manager.stop_all()
        assert sorted(events[1]) == sorted(events[2]) == sorted([manual["id"], auto["id"]])
        assert events[3] == [auto["id"]] and events[4] == [other["id"]]
        assert 10 <= listings <= 2 * 12  # two groups (two graphs), one listing each per interval

    run(scenario)


def test_open_shared_stream_yields_listings_forever(emu: GesEmulator) -> None:
    async def scenario() -> None:
        _, kwargs = make(None).serialize()
        stream: AsyncIterator[Any] = GesBackupEventTrigger.open_shared_stream(kwargs)
        first = await anext(stream)
        second = await anext(stream)
        assert isinstance(first, BackupListing) and len(first.backups) == 4
        assert [b.id for b in second.backups] == [b.id for b in first.backups]
        await stream.aclose()  # type: ignore[attr-defined]

    run(scenario)
