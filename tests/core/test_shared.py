"""Deferred sensors in one triggerer share listings: one per graph and poll, each judging alone."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_ges.emulator import GesEmulator
from airflow_provider_ges.shared import SHARED, SharedResults
from airflow_provider_ges.triggers.ges import GesBackupTrigger

NOW = datetime.now(timezone.utc).replace(microsecond=0)


def gate_trigger(graph: str, poll: float, **gate: Any) -> GesBackupTrigger:
    return GesBackupTrigger(
        ges_conn_id="ges_default",
        gate={"graph_name": graph, **gate},
        poll_interval=poll,
        end_time=time.time() + 30,
    )


async def first_event(trigger: GesBackupTrigger) -> dict[str, Any]:
    async for event in trigger.run():
        return dict(event.payload)
    raise AssertionError("no event")


@pytest.mark.ges_emulator(graphs=0, backups=0)
def test_hundred_triggers_on_five_graphs_list_each_graph_once_per_poll(ges_connection: GesEmulator) -> None:
    emu = ges_connection
    SHARED.clear()
    graphs = [f"graph{g}" for g in range(5)]
    running = {}
    for name in graphs:
        emu.add_graph(name)
        running[name] = emu.add_backup(name, status="backing_up", start=NOW + timedelta(minutes=1))
    # half of the triggers want a manual backup, half an auto one: each judges by its own rule
    triggers = [
        gate_trigger(graphs[i % 5], 0.5, backup_method="manual" if i % 2 else "auto") for i in range(100)
    ]
    auto: dict[str, Any] = {}

    async def scenario() -> list[dict[str, Any]]:
        tasks = [asyncio.create_task(first_event(t)) for t in triggers]
        await asyncio.sleep(2.0)  # about four polls while every backup is still running
        assert not any(t.done() for t in tasks)
        emu.reset_counters()
        await asyncio.sleep(2.0)
        per_poll = emu.counters["list_graph_backups"] / (2.0 / 0.5)
        assert per_poll <= 5 * 1.5, per_poll  # one listing per graph and poll (not 100)
        for name in graphs:
            emu.set_backup_status(running[name]["id"], "success")
            auto[name] = emu.add_backup(
                name, status="success", method="auto", start=NOW + timedelta(minutes=2)
            )
        return await asyncio.wait_for(asyncio.gather(*tasks), 20)

    events = asyncio.run(scenario())
    assert emu.counters["list_graphs"] <= 5  # the look-up shared too
    for i, event in enumerate(events):
        name = graphs[i % 5]
        wanted = running[name] if i % 2 else auto[name]
        assert event["status"] == "success" and event["backup"]["id"] == wanted["id"], (i, event)


@pytest.mark.ges_emulator(graphs=0, backups=0)
def test_a_failing_shared_listing_is_each_waiters_own_transient_wait(ges_connection: GesEmulator) -> None:
    emu = ges_connection
    SHARED.clear()
    emu.add_graph("movies")
    emu.set_faults("503:every=1:scope=list")
    triggers = [gate_trigger("movies", 0.2) for _ in range(10)]

    async def scenario() -> list[dict[str, Any]]:
        tasks = [asyncio.create_task(first_event(t)) for t in triggers]
        await asyncio.sleep(1.5)
        assert not any(t.done() for t in tasks)  # errors never pass nor end a wait
        emu.set_faults(None)
        emu.add_backup("movies", status="success", start=NOW)
        return await asyncio.wait_for(asyncio.gather(*tasks), 20)

    assert {e["status"] for e in asyncio.run(scenario())} == {"success"}


def test_shared_results_reuse_only_while_fresh_and_join_a_fetch_in_flight() -> None:
    shared = SharedResults()
    calls = 0

    async def fetch() -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return calls

    async def scenario() -> list[int]:
        first = await asyncio.gather(*(shared.get("k", 0.3, fetch) for _ in range(5)))  # one fetch
        again = await shared.get("k", 0.3, fetch)  # fresh: reused
        await asyncio.sleep(0.35)
        later = await shared.get("k", 0.3, fetch)  # older than fresh_for: fetched anew
        return [*first, again, later]

    assert asyncio.run(scenario()) == [1, 1, 1, 1, 1, 1, 2]
    assert shared.fetches == 2


def never_ending_fetch(started: asyncio.Event) -> Callable[[], Awaitable[str]]:
    """A fetch that sets ``started`` and then hangs (until cancelled)."""

    async def slow() -> str:
        started.set()
        await asyncio.sleep(10)
        return "never"

    return slow


def test_a_cancelled_fetcher_does_not_cancel_the_other_waiters() -> None:
    """A trigger ends (cancelled) while its fetch is in flight: the others fetch anew, not die."""
    shared = SharedResults()
    started = asyncio.Event()
    slow = never_ending_fetch(started)

    async def quick() -> str:
        return "fresh"

    async def scenario() -> str:
        fetcher = asyncio.create_task(shared.get("k", 5.0, slow))
        await started.wait()
        waiter = asyncio.create_task(shared.get("k", 5.0, quick))
        await asyncio.sleep(0.01)
        fetcher.cancel()
        with pytest.raises(asyncio.CancelledError):
            await fetcher
        return await asyncio.wait_for(waiter, 5)

    assert asyncio.run(scenario()) == "fresh"


def test_cancelling_every_waiter_and_the_fetcher_at_once_ends_them_all() -> None:
    """The triggerer stops (or removes every trigger of a graph): fetcher and waiters are cancelled
    together, and each ends cancelled; none takes the fetcher's cancellation as a reason to fetch
    again and run on."""
    shared = SharedResults()
    started = asyncio.Event()
    slow = never_ending_fetch(started)

    async def scenario() -> list[bool]:
        tasks = [asyncio.create_task(shared.get("k", 5.0, slow)) for _ in range(5)]
        await started.wait()
        await asyncio.sleep(0.01)
        for task in tasks:
            task.cancel()
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 2)
        return [task.cancelled() for task in tasks]

    assert asyncio.run(scenario()) == [True] * 5
    assert shared.fetches == 1


def test_hooks_starting_together_read_their_connection_once(
    set_conn: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A burst of triggers (a triggerer restart, a mapped sensor) reads each connection once: one
    Airflow lookup, one parse, one masking of its secrets, instead of one per trigger."""
    from airflow.sdk import BaseHook

    from airflow_provider_ges.hooks.ges import GesAsyncHook

    set_conn("ges_a", extra={"project_id": "a" * 32})
    set_conn("ges_b", extra={"project_id": "b" * 32})
    lookups: list[str] = []
    real = BaseHook.aget_connection.__func__  # type: ignore[attr-defined]

    async def counted(cls: Any, conn_id: str) -> Any:
        lookups.append(conn_id)
        await asyncio.sleep(0.01)  # as a real lookup, which goes through the supervisor
        return await real(cls, conn_id)

    monkeypatch.setattr(BaseHook, "aget_connection", classmethod(counted))

    async def burst() -> list[str]:
        hooks = [GesAsyncHook("ges_a" if i % 2 else "ges_b") for i in range(100)]
        configs = await asyncio.gather(*(hook.get_config() for hook in hooks))
        return [config.project_id for config in configs]

    projects = asyncio.run(burst())
    assert projects == ["b" * 32, "a" * 32] * 50  # each hook its own connection's
    assert sorted(lookups) == ["ges_a", "ges_b"]


def test_a_broken_connection_read_together_fails_every_hook(set_conn: Any) -> None:
    from airflow_provider_ges.hooks.ges import GesAsyncHook

    set_conn("ges_broken", extra={"timeout": "soon"})

    async def burst() -> list[BaseException | Any]:
        hooks = [GesAsyncHook("ges_broken") for _ in range(5)]
        return await asyncio.gather(*(hook.get_config() for hook in hooks), return_exceptions=True)

    errors = asyncio.run(burst())
    assert all(isinstance(err, ValueError) and "timeout" in str(err) for err in errors), errors
