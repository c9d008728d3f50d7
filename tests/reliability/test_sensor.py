"""The backup gate under faults: it neither passes early nor fails on a blip.

Poke mode (``execute`` looping over ``poke``), the trigger on a real event loop, and one full
``dag.test()`` run in deferrable mode, each against an emulator injecting transient faults. The
gate may only pass on ``success`` of tonight's backup, fail on its ``failed``, or time out.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_ges._compat import AirflowFailException, AirflowSensorTimeout
from airflow_provider_ges.emulator import GesEmulator
from airflow_provider_ges.hooks.ges import GesAsyncHook, GesHook
from airflow_provider_ges.sensors.ges import GesBackupSensor
from airflow_provider_ges.triggers.ges import GesBackupTrigger
from tests.airflow.test_e2e import gate_dag, run
from tests.airflow.test_gate import logged
from tests.helpers import list_calls

START = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=1)
#: transient faults of every kind (no stall: the waits are the sensor's own); about 40% of calls
FAULTS = (
    "429:every=6:retry_after=0.02,500:every=7,502:every=11,503:every=5,ges7006:every=13,"
    "drop:every=9,html:every=8"
)


@pytest.fixture
def emu(ges_emulator: GesEmulator, monkeypatch: pytest.MonkeyPatch) -> GesEmulator:
    """Graph 'movies' with an old success (too old to count) among 300 other backups, and
    ``ges_default`` with fast retries."""
    conn = ges_emulator.connection()
    conn["extra"].update(max_retries=4, timeout=2)
    monkeypatch.setenv("AIRFLOW_CONN_GES_DEFAULT", json.dumps(conn))
    ges_emulator.add_graph("movies")
    ges_emulator.add_backup("movies", status="success", start=START - timedelta(hours=3))
    return ges_emulator


def tonight(emu: GesEmulator) -> dict[str, Any]:
    return emu.add_backup("movies", status="backing_up", start=START + timedelta(minutes=20))


def flip_after_lists(emu: GesEmulator, backup_id: str, status: str, lists: int) -> threading.Thread:
    """Set a backup's status once the emulator has served ``lists`` list calls (faulted or not)."""

    def watch() -> None:
        deadline = time.monotonic() + 30
        while list_calls(emu) < lists and time.monotonic() < deadline:
            time.sleep(0.01)
        emu.set_backup_status(backup_id, status)
        flipped.append(time.monotonic())

    flipped: list[float] = []
    thread = threading.Thread(target=watch, daemon=True)
    thread.flipped = flipped  # type: ignore[attr-defined]
    thread.start()
    return thread


def sensor(**kwargs: Any) -> GesBackupSensor:
    s = GesBackupSensor(
        task_id="wait",
        graph_name=kwargs.pop("graph_name", "movies"),
        newer_than=START,
        deferrable=False,
        mode="poke",
        poke_interval=kwargs.pop("poke_interval", 0.05),
        timeout=kwargs.pop("timeout", 30),
        **kwargs,
    )
    s.hook = GesHook(retry_base_delay=0.005)  # the sensor's hook, with short back-offs
    return s


# --- poke mode ------------------------------------------------------------------------------------

POKE = pytest.mark.ges_emulator(graphs=3, backups=300, seed=9, faults=FAULTS)


@POKE
def test_poke_mode_waits_through_faults_then_passes_on_success(
    emu: GesEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    new = tonight(emu)
    flip = flip_after_lists(emu, new["id"], "success", lists=40)
    result = sensor().execute({})
    passed_at = time.monotonic()
    flip.join()
    assert result["id"] == new["id"] and result["status"] == "success"
    assert flip.flipped and flip.flipped[0] <= passed_at  # not before the backup succeeded
    c = emu.counters
    assert c["faults_injected"] >= 10 and list_calls(emu) >= 40
    assert "retrying in" in capsys.readouterr().out


@POKE
def test_poke_mode_fails_only_on_the_real_failure(emu: GesEmulator) -> None:
    new = tonight(emu)
    flip = flip_after_lists(emu, new["id"], "failed", lists=30)
    with pytest.raises(AirflowFailException) as err:
        sensor().execute({})
    flip.join()
    assert new["id"] in str(err.value) and "movies" in str(err.value)
    assert emu.counters["faults_injected"] >= 5


@POKE
def test_poke_mode_times_out_rather_than_failing_on_faults(emu: GesEmulator) -> None:
    tonight(emu)
    started = time.monotonic()
    with pytest.raises(AirflowSensorTimeout):
        sensor(timeout=1.5).execute({})
    assert 1.5 <= time.monotonic() - started < 10
    assert emu.counters["faults_injected"] >= 3


@pytest.mark.ges_emulator(graphs=1, backups=50, seed=9)
def test_poke_after_retries_run_out_is_a_wait_not_a_failure(
    emu: GesEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every call failing for a while (more than max_retries): pokes say 'not yet', then pass."""
    new = tonight(emu)
    emu.set_backup_status(new["id"], "success")
    emu.set_faults("503:every=1:count=12,drop:every=1:count=3")
    s = sensor()
    outcomes = [bool(s.poke({})) for _ in range(4)]
    assert outcomes == [False, False, False, True]  # 5 + 5 + 5 failed calls, then through
    assert s.poke({}).xcom_value["id"] == new["id"]
    assert capsys.readouterr().out.count("GES still failing after retries; will look again") == 3


# --- the trigger ----------------------------------------------------------------------------------


@pytest.fixture
def fast_trigger_hook(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        "airflow_provider_ges.triggers.ges.GesAsyncHook",
        functools.partial(GesAsyncHook, retry_base_delay=0.005),
    )


def trigger_events(timeout: float = 30.0, graph_name: str = "movies") -> list[dict[str, Any]]:
    trig = GesBackupTrigger(
        ges_conn_id="ges_default",
        gate={"graph_name": graph_name, "newer_than": START.isoformat()},
        poll_interval=0.05,
        end_time=time.time() + timeout,
    )

    async def collect() -> list[dict[str, Any]]:
        return [event.payload async for event in trig.run()]

    return asyncio.run(asyncio.wait_for(collect(), 60))


@POKE
@pytest.mark.usefixtures("fast_trigger_hook")
def test_trigger_waits_through_faults_then_one_success_event(emu: GesEmulator) -> None:
    new = tonight(emu)
    flip = flip_after_lists(emu, new["id"], "success", lists=40)
    (event,) = trigger_events()
    flip.join()
    assert event["status"] == "success" and event["backup"]["id"] == new["id"]
    assert emu.counters["faults_injected"] >= 10


@POKE
@pytest.mark.usefixtures("fast_trigger_hook")
def test_trigger_fails_only_on_the_real_failure(emu: GesEmulator) -> None:
    new = tonight(emu)
    flip_after_lists(emu, new["id"], "failed", lists=30)
    (event,) = trigger_events()
    assert event["status"] == "failed" and event["backup"]["id"] == new["id"]


@pytest.mark.ges_emulator(graphs=1, backups=50, seed=9, faults="503:every=1")
@pytest.mark.usefixtures("fast_trigger_hook")
def test_trigger_under_endless_faults_times_out_never_errors(emu: GesEmulator) -> None:
    new = tonight(emu)
    emu.set_backup_status(new["id"], "success")  # there, but never readable
    started = time.monotonic()
    (event,) = trigger_events(timeout=1.0)
    assert event["status"] == "timeout"
    assert time.monotonic() - started < 10
    assert list_calls(emu) >= 5  # it kept trying


@pytest.mark.ges_emulator(graphs=1, backups=50, seed=9)
@pytest.mark.usefixtures("fast_trigger_hook")
def test_trigger_after_retries_run_out_keeps_polling(emu: GesEmulator) -> None:
    new = tonight(emu)
    emu.set_backup_status(new["id"], "success")
    emu.set_faults("503:every=1:count=12,html:every=1:count=3")
    (event,) = trigger_events()
    assert event["status"] == "success" and event["backup"]["id"] == new["id"]
    assert list_calls(emu) == 15 + 2  # the faults, then the graph look-up and one listing


# --- the graph is deleted and re-created mid-wait (a nightly rebuild) -----------------------------


def rebuild(emu: GesEmulator) -> dict[str, Any]:
    """Delete graph 'movies', create it again (a new id) and back it up: the backup to wait for."""
    old = next(g for g in emu.graphs() if g["name"] == "movies")
    emu.delete_graph(old["id"])
    emu.add_graph("movies")
    return emu.add_backup("movies", status="success", start=START + timedelta(minutes=40))


@pytest.mark.ges_emulator(graphs=2, backups=20, seed=9)
def test_sensor_follows_a_graph_rebuilt_under_the_same_name(emu: GesEmulator) -> None:
    tonight(emu)
    waiting = sensor()
    assert not waiting.poke({}).is_done  # found 'movies', its backup still backing_up
    new = rebuild(emu)
    assert not waiting.poke({}).is_done  # the id it found is gone: no failure, a wait
    assert waiting.poke({}).xcom_value["id"] == new["id"]  # found again, under its new id
    assert emu.counters["list_graphs"] == 2


@pytest.mark.ges_emulator(graphs=2, backups=20, seed=9)
@pytest.mark.usefixtures("fast_trigger_hook")
def test_trigger_follows_a_graph_rebuilt_under_the_same_name(emu: GesEmulator) -> None:
    tonight(emu)
    rebuilt: list[dict[str, Any]] = []

    def rebuild_after_two_looks() -> None:
        deadline = time.monotonic() + 30
        while emu.counters["list_graph_backups"] < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        rebuilt.append(rebuild(emu))

    thread = threading.Thread(target=rebuild_after_two_looks, daemon=True)
    thread.start()
    (event,) = trigger_events()
    thread.join()
    assert event["status"] == "success" and event["backup"]["id"] == rebuilt[0]["id"]
    assert emu.counters["list_graphs"] == 2


# --- the look line says why no backup counts; a typo logs none -----------------------------------


def looks(capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> list[str]:
    return [line for line in logged(capsys, caplog) if "Looked at graph" in line]


@pytest.mark.ges_emulator(graphs=2, backups=20, seed=9)
@pytest.mark.usefixtures("fast_trigger_hook")
def test_sensor_and_trigger_log_the_cutoff_and_the_newest_backup_ignored(
    emu: GesEmulator, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    (old,) = [b for b in emu.backups() if b["graph_name"] == "movies"]
    with caplog.at_level(logging.INFO):
        assert not sensor().poke({}).is_done
        (event,) = trigger_events(timeout=0.3)
    assert event["status"] == "timeout"
    z = "%Y-%m-%dT%H:%M:%SZ"
    why = (
        f"no backup started at or after {START.strftime(z)} (newer_than); newest: {old['name']!r}"
        f" (id {old['id']}) started {(START - timedelta(hours=3)).strftime(z)}"
    )
    lines = looks(capsys, caplog)
    assert len(lines) == 2 and all(why in line for line in lines), lines  # the trigger logs it once


@pytest.mark.ges_emulator(graphs=2, backups=20, seed=9)
@pytest.mark.usefixtures("fast_trigger_hook")
def test_a_mistyped_graph_fails_with_no_look_line_before_it(
    emu: GesEmulator, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    with caplog.at_level(logging.INFO):
        with pytest.raises(AirflowFailException, match="No graph named 'moveis'"):
            sensor(graph_name="moveis").poke({})
        (event,) = trigger_events(graph_name="moveis")
    assert event["status"] == "failed" and "No graph named 'moveis'" in event["message"]
    assert looks(capsys, caplog) == []
    assert not sensor().poke({}).is_done and len(looks(capsys, caplog)) == 1  # the right name logs


# --- a real deferrable run under faults -----------------------------------------------------------


@pytest.fixture(scope="module")
def airflow_db() -> None:
    from airflow.utils.db import initdb

    initdb()


@pytest.fixture
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The DAG's own hooks use the default back-off (0.5 s doubling): shorten the jitter only."""
    monkeypatch.setattr("airflow_provider_ges.plans.random.uniform", lambda low, high: min(high, 0.01))
    yield


@pytest.mark.ges_emulator(graphs=2, backups=250, seed=9, faults=FAULTS)
@pytest.mark.usefixtures("quick_backoff")
def test_deferrable_dag_run_under_faults_passes_on_tonights_backup(
    emu: GesEmulator, airflow_db: None
) -> None:
    new = tonight(emu)
    flip = flip_after_lists(emu, new["id"], "success", lists=20)
    logical_date = START
    _dag_run, states, xcoms = run(gate_dag("deferrable", poke_interval=0.2), logical_date=logical_date)
    flip.join()
    assert states == {"wait_for_backup": "success", "run_etl": "success"}
    assert xcoms["wait_for_backup"]["id"] == new["id"] and xcoms["run_etl"] == new["id"]
    assert emu.counters["faults_injected"] >= 5
