"""Benchmark 3: a thousand ``GesBackupTrigger``s in one event loop, as the triggerer runs them.

The emulator runs in its own process (its ~1,000 request threads must not share our GIL and
distort the event-loop measurements) with 200 ms of latency on every call (GES and IAM), 1,000
graphs with 3 old finished backups each, and one ``backing_up`` backup per graph started now.
Each trigger waits for its own graph (``gate={"graph_id": ..., "newer_than": now - 60 s}``: a
sensor names one graph, so each trigger lists that graph's backups, one page), polling every 5 s.

The worst moment is chosen for the flip: as soon as every trigger has finished its second look, the
emulator sets all 1,000 backups to ``success`` (one command over the control channel), so every
trigger has just looked and sleeps a whole interval before it can see it.

Measured: requests and accepted connections (emulator), time from the flip to each event, the
peak RSS of this process, the longest event-loop callback (every ``asyncio`` handle is timed, in
wall and CPU time, and the garbage collector's share is noted) and the heartbeat lag (how late a
task sleeping 5 ms wakes up: what a newly ready trigger waits for the loop).

The emulator's listen backlog is raised to 1,024 (``--backlog``; the stdlib default it keeps is 5,
which makes a thousand simultaneous connects wait for SYN retransmits and 30 s read timeouts; a real
API gateway accepts them).

    python benchmarks/bench_triggers.py [--triggers 1000] [--poll 5] [--latency-ms 200] [--backlog 1024]
        [--gc-freeze]
"""

from __future__ import annotations

import argparse
import asyncio
import asyncio.events
import gc
import math
import os
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import EmulatorProcess, Row, emit, isolate_airflow, percentile, rss_mb

isolate_airflow()

DEADLINE_S = 120.0  # the whole wait, whatever happens
HEARTBEAT_S = 0.005


class LoopWatch:
    """Times every event-loop callback (wall, CPU, GC inside it), the heartbeat lag and the peak RSS."""

    def __init__(self) -> None:
        self.steady = False  # set once every trigger has looked once: start-up costs are behind
        self.longest = {False: (0.0, 0.0, 0.0), True: (0.0, 0.0, 0.0)}  # wall, CPU, GC s, per phase
        self.longest_without_gc = {False: 0.0, True: 0.0}  # wall minus the GC pauses inside it
        self.tracked: list[int] = []  # objects the GC tracks: before start-up, after the first look
        self.slowest_cpu = 0.0
        self.lags: list[float] = []
        self.gc_pauses: list[float] = []
        self.peak_rss = rss_mb()
        self._gc_start = 0.0

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_start = time.perf_counter()
        else:
            self.gc_pauses.append(time.perf_counter() - self._gc_start)

    def install(self) -> None:
        """Wrap ``Handle._run``, which runs every callback and task step of the loop."""
        gc.callbacks.append(self._on_gc)
        run = asyncio.events.Handle._run
        watch = self

        def timed_run(handle: asyncio.events.Handle) -> None:
            wall, cpu, pauses = time.perf_counter(), time.thread_time(), len(watch.gc_pauses)
            run(handle)
            wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
            watch.slowest_cpu = max(watch.slowest_cpu, cpu)
            in_gc = sum(watch.gc_pauses[pauses:])
            if wall > watch.longest[watch.steady][0]:
                watch.longest[watch.steady] = (wall, cpu, in_gc)
            own = watch.longest_without_gc
            own[watch.steady] = max(own[watch.steady], wall - in_gc)

        asyncio.events.Handle._run = timed_run  # type: ignore[method-assign, assignment]

    async def heartbeat(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            before = loop.time()
            await asyncio.sleep(HEARTBEAT_S)
            self.lags.append(loop.time() - before - HEARTBEAT_S)
            if len(self.lags) % 20 == 0:
                self.peak_rss = max(self.peak_rss, rss_mb())


async def run_triggers(triggers: list[Any], emu: EmulatorProcess, watch: LoopWatch) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    heartbeat = asyncio.create_task(watch.heartbeat(stop))
    received: list[tuple[float, dict[str, Any]]] = []

    async def consume(trigger: Any) -> None:
        async for event in trigger.run():  # what the triggerer does with each trigger
            received.append((time.time(), event.payload))

    watch.tracked.append(len(gc.get_objects()))
    start = time.time()
    tasks = [asyncio.create_task(consume(t)) for t in triggers]
    deadline = loop.time() + DEADLINE_S
    cpu = [time.process_time()]
    for looks in (1, 2):  # wait until every trigger has looked once, then twice
        while min(t.looks for t in triggers) < looks and loop.time() < deadline:
            await asyncio.sleep(0.01)
        if not watch.steady:
            watch.tracked.append(len(gc.get_objects()))
        watch.steady = True
        cpu.append(time.process_time())
    two_rounds = time.time() - start
    before_flip = await loop.run_in_executor(None, emu.ask, "counters")
    flip = await loop.run_in_executor(None, emu.ask, "flip")  # replies once all 1,000 are flipped
    _, pending = await asyncio.wait(tasks, timeout=max(1.0, deadline - loop.time()))
    for task in pending:
        task.cancel()
    stop.set()
    await heartbeat
    return {
        "two_rounds": two_rounds,
        "cpu_rounds": (cpu[1] - cpu[0], cpu[2] - cpu[1]),
        "before_flip": before_flip,
        "flip": flip,
        "events": received,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="same run (it is short already)")
    parser.add_argument("--triggers", type=int, default=1000)
    parser.add_argument("--poll", type=float, default=5.0)
    parser.add_argument("--latency-ms", type=int, default=200)
    parser.add_argument(
        "--backlog", type=int, default=1024, help="emulator listen backlog (stdlib default: 5)"
    )
    parser.add_argument(
        "--gc-freeze", action="store_true", help="gc.freeze() after start-up (Airflow does not)"
    )
    args = parser.parse_args()
    n = args.triggers
    data = ("--graphs", str(n), "--backups", str(3 * n), "--pending", str(n))
    faults = f"latency:ms={args.latency_ms}:scope=all"
    with EmulatorProcess(*data, "--faults", faults, "--backlog", str(args.backlog)) as emu:
        os.environ.update(emu.conn_env("password"))
        from airflow_provider_ges.triggers.ges import GesBackupTrigger

        class CountingTrigger(GesBackupTrigger):  # type: ignore[misc, unused-ignore]
            """The real trigger; only counts its looks (to find the worst moment to flip)."""

            looks = 0

            async def check(self, hook: Any) -> Any:
                verdict = await super().check(hook)
                self.looks += 1
                return verdict

        if args.gc_freeze:
            gc.collect()
            gc.freeze()
        rss_before = rss_mb()
        newer_than = (datetime.now(timezone.utc) - timedelta(seconds=60)).isoformat()
        end_time = time.time() + DEADLINE_S
        triggers = [
            CountingTrigger(
                ges_conn_id="ges_default",
                gate={"graph_id": graph_id, "newer_than": newer_than},
                poll_interval=args.poll,
                end_time=end_time,
            )
            for graph_id, _ in emu.info["pending"]
        ]
        emu.ask("reset")
        watch = LoopWatch()
        watch.install()
        cpu = time.process_time()
        result = asyncio.run(run_triggers(triggers, emu, watch))
        cpu = time.process_time() - cpu
        counters = emu.ask("counters")
    report(args, triggers, result, counters, watch, rss_before, cpu)


def report(
    args: argparse.Namespace,
    triggers: list[Any],
    result: dict[str, Any],
    counters: dict[str, Any],
    watch: LoopWatch,
    rss_before: float,
    cpu: float,
) -> None:
    n, poll = len(triggers), args.poll
    flip_at = result["flip"]["start"]
    waits = [at - flip_at for at, payload in result["events"] if payload.get("status") == "success"]
    statuses: dict[str, int] = {}
    for _, payload in result["events"]:
        statuses[payload["status"]] = statuses.get(payload["status"], 0) + 1
    rounds = sum(t.looks for t in triggers) / n or math.nan
    lists = counters["list_graph_backups"] + counters["list_backups"]
    early = result["before_flip"]
    p50, p99, worst = (percentile(waits, q) for q in (50, 99, 100)) if waits else (float("nan"),) * 3
    growth = watch.peak_rss - rss_before
    (start_wall, start_cpu, start_gc), (wall, cpu_in, gc_in) = (
        [x * 1000 for x in watch.longest[phase]] for phase in (False, True)
    )
    first_cpu, second_cpu = result["cpu_rounds"]
    bench = f"3 {n} triggers{', gc.freeze()' if args.gc_freeze else ''}"
    ok_events = statuses.get("success", 0) == n
    rows = [
        Row(
            bench,
            f"success events (of {len(result['events'])} events, {DEADLINE_S:g} s limit)",
            str(statuses.get("success", 0)),
            target=str(n),
            ok=ok_events,
        ),
        Row(
            bench,
            "token requests",
            str(counters["create_token"]),
            target="1",
            ok=counters["create_token"] == 1,
        ),
        Row(
            bench,
            f"list requests per poll round ({lists} for {rounds:.2f} rounds)",
            f"{lists / rounds:.0f}",
            target=f"{n} (1 per trigger)",
            ok=abs(lists / rounds - n) < 0.01 * n,
        ),
        Row(
            bench,
            "connections accepted by the emulator: first 2 rounds / after the flip",
            f"{early['connections']} / {counters['connections'] - early['connections']}",
        ),
        Row(
            bench,
            f"flip -> event p50 / p99 / max, s (poll {poll:g} s, {args.latency_ms} ms latency)",
            f"{p50:.2f} / {p99:.2f} / {worst:.2f}",
            target=f"p99 <= {poll + 1:g}",
            ok=p99 <= poll + 1,
        ),
        Row(
            bench,
            "peak RSS growth of the event-loop process, MB",
            f"{growth:.0f}",
            target="<= 100",
            ok=growth <= 100,
        ),
        Row(
            bench,
            f"longest loop callback in the first look, ms wall (CPU {start_cpu:.0f}, GC {start_gc:.0f})",
            f"{start_wall:.0f}",
            target="< 100",
            ok=start_wall < 100,
        ),
        Row(
            bench,
            f"longest loop callback after it, ms wall (CPU {cpu_in:.0f}, GC {gc_in:.0f})",
            f"{wall:.0f}",
            target="< 100",
            ok=wall < 100,
        ),
        Row(
            bench,
            "longest loop callback with the GC pauses in it taken out, ms: first look / after it",
            " / ".join(f"{watch.longest_without_gc[phase] * 1000:.0f}" for phase in (False, True)),
            target="< 100",
            ok=max(watch.longest_without_gc.values()) < 0.1,
        ),
        Row(
            bench,
            f"objects the GC tracks: before the triggers start / added by {n} triggers (first look)",
            f"{watch.tracked[0]:,} / {watch.tracked[1] - watch.tracked[0]:+,}",
        ),
        Row(
            bench,
            "heartbeat lag p99 / max, ms (a ready task's wait for the loop)",
            f"{percentile(watch.lags, 99) * 1000:.0f} / {max(watch.lags) * 1000:.0f}",
        ),
        Row(
            bench,
            "CPU of the event-loop process, s: first round (start-up) / second round / whole run",
            f"{first_cpu:.1f} / {second_cpu:.1f} / {cpu:.1f}",
        ),
        Row(
            bench,
            "emulator: peak threads (one per open connection) / RSS MB",
            f"{counters['threads_peak']} / {counters['rss_mb']:.0f}",
        ),
    ]
    gc_ms = max(watch.gc_pauses, default=0) * 1000
    notes = [
        f"{bench}: the first two rounds took {result['two_rounds']:.1f} s; flipping took"
        f" {result['flip']['end'] - flip_at:.3f} s; longest GC pause {gc_ms:.0f}"
        f" ms ({len(watch.gc_pauses)} collections); slowest callback by CPU {watch.slowest_cpu * 1000:.0f}"
        f" ms; events {statuses}"
    ]
    emit(rows, notes)


if __name__ == "__main__":
    main()
