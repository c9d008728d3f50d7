"""Benchmark 3: a thousand ``GesBackupTrigger``s (deferred sensors) over ten graphs in one event loop.

As the triggerer runs them: each trigger consumed with ``async for event in trigger.run()`` in one
loop. The emulator runs in its own process (its request threads must not share our GIL) with
``--latency-ms`` on every call (GES and IAM), ``--graphs`` graphs with 3 old finished backups each and
one ``backing_up`` backup per graph started now. The triggers are spread evenly over the graphs; every
other one names its graph by name without a found id (so it looks the id up: ``GET /graphs``), the
others by id, and each has its own ``newer_than`` (now - 60 s - i ms): every trigger judges the
shared listing by its own rules. One trigger per graph is a control whose ``newer_than`` is in the
future: it must never pass, and ends with ``timeout`` at its own ``end_time``.

Triggers of one triggerer on one graph through one connection share one listing per poll
interval (``airflow_provider_ges.shared``). The flip comes at the worst moment: as soon as every
trigger has finished its third look, the emulator sets every pending backup to ``success``.

Measured: listings per poll interval and per round of looks, graph-list and token requests
(emulator counters), flip -> event latency, peak RSS growth of this process per 1,000 triggers,
and the event loop: every ``asyncio`` callback is timed (wall, thread CPU, the GC pauses inside it);
a sampler thread records the main thread's stack every ~2 ms while a callback runs, so the slowest
callbacks are attributed by frame (our package, httpx/httpcore, pydantic, Airflow's secrets
masker, asyncio, GC). A copy of Airflow's triggerer watchdog (sleep 0.1 s, warn when it took more
than ``[triggerer] blocked_main_thread_warning_threshold``, 0.2 s) counts the "Triggerer's async
thread was blocked" warnings a triggerer would log.

    python benchmarks/bench_triggers.py [--triggers 1000] [--graphs 10] [--poll 5] [--latency-ms 200]
        [--backlog 1024] [--gc-freeze]
"""

from __future__ import annotations

import argparse
import asyncio
import asyncio.base_events
import asyncio.events
import gc
import math
import os
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import FrameType
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import EmulatorProcess, Row, emit, isolate_airflow, percentile, rss_mb

isolate_airflow()

DEADLINE_S = 120.0  # the whole wait, whatever happens
HEARTBEAT_S = 0.005
SAMPLE_S = 0.002
WATCHDOG_THRESHOLD_S = 0.2  # Airflow's [triggerer] blocked_main_thread_warning_threshold default
LOOKS_BEFORE_FLIP = 3
LOOP_TARGET_MS = 20.0

#: path fragment -> bucket, the first that matches (innermost frame first)
BUCKETS = (
    ("/airflow_provider_ges/", "ours"),
    ("/pydantic", "pydantic"),
    ("/httpx/", "httpx"),
    ("/httpcore/", "httpcore"),
    ("/h11/", "h11"),
    ("/anyio/", "anyio"),
    ("/secrets_masker/", "airflow secrets masker"),
    ("/structlog/", "logging"),
    ("/logging/", "logging"),
    ("/airflow/", "airflow"),
    ("/asyncio/", "asyncio"),
    ("/ssl.py", "ssl"),
    ("/json/", "json"),
    ("/benchmarks/", "benchmark"),
)


def bucket(filename: str) -> str:
    for fragment, name in BUCKETS:
        if fragment in filename:
            return name
    return "other"


def stack_label(frame: FrameType | None) -> str:
    """``library <- our function`` for a sampled stack: the innermost frame's bucket and the
    innermost frame of our package (what of ours called it)."""
    inner: str | None = None
    ours: str | None = None
    while frame is not None:
        name = bucket(frame.f_code.co_filename)
        if inner is None and name != "other":
            inner = name
        if name == "ours":
            module = frame.f_code.co_filename.split("/airflow_provider_ges/", 1)[1].removesuffix(".py")
            ours = f"{module.replace('/', '.')}.{frame.f_code.co_name}"
            break
        frame = frame.f_back
    inner = inner or "other"
    if ours is None:
        return inner
    return ours if inner == "ours" else f"{inner} <- {ours}"


@dataclass
class Callback:
    """One timed event-loop callback."""

    wall: float
    cpu: float
    gc: float
    what: str
    samples: Counter[str] = field(default_factory=Counter)

    @property
    def own(self) -> float:
        """Thread CPU with the GC pauses taken out: what the callback's code itself took (its wall
        time also counts the time the OS ran other processes: this machine may be busy)."""
        return max(0.0, self.cpu - self.gc)

    def describe(self) -> str:
        where = ", ".join(f"{label} x{n}" for label, n in self.samples.most_common(4)) or "no sample"
        times = f"{self.wall * 1000:.0f} ms (GC {self.gc * 1000:.0f}, CPU {self.cpu * 1000:.0f})"
        return f"{times} {self.what}: {where}"


class LoopWatch:
    """Times every event-loop callback, samples the stack of slow ones, the heartbeat lag, the RSS."""

    KEEP = 8  # slowest callbacks kept per phase and ranking

    def __init__(self) -> None:
        self.phase = "first look"  # "after it" once every trigger has looked once
        self.slowest: dict[tuple[str, str], list[Callback]] = {}  # (phase, "wall"|"own") -> slowest
        self.count = 0
        self.tracked: list[int] = []  # objects the GC tracks: before start-up, after the first look
        self.lags: list[float] = []
        self.gc_pauses: list[float] = []
        self.full_gcs: list[tuple[str, float]] = []  # (phase, pause) of each full collection
        #: (phase, what Airflow's watchdog measured, the GC pauses inside it)
        self.watchdog: list[tuple[str, float, float]] = []
        self.peak_rss = rss_mb()
        self._gc_start = 0.0
        self._main = threading.get_ident()
        self._current: Counter[str] | None = None  # the samples of the callback now running
        self._stop = threading.Event()
        self._iteration = [0.0, 0.0, 0.0, 0, 0]  # wall, CPU, GC, callbacks, trigger steps: this pass
        #: the longest pass of the loop over its ready callbacks (they run back to back: what a
        #: timer, e.g. Airflow's watchdog, waits for), per phase: (wall, CPU, GC, callbacks, steps)
        self.longest_pass: dict[str, tuple[float, float, float, int, int]] = {}
        self.fetches: list[tuple[float, Any]] = []  # (monotonic time, key) of each shared listing

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_start = time.perf_counter()
        else:
            self.gc_pauses.append(time.perf_counter() - self._gc_start)
            if info["generation"] == 2:
                self.full_gcs.append((self.phase, self.gc_pauses[-1]))

    def _sample(self) -> None:
        while not self._stop.wait(SAMPLE_S):
            samples = self._current
            if samples is None:
                continue
            frame = sys._current_frames().get(self._main)
            if samples is self._current:  # still the same callback
                samples[stack_label(frame)] += 1

    def _keep(self, cb: Callback) -> None:
        for ranking, value in (("wall", cb.wall), ("own", cb.own)):
            kept = self.slowest.setdefault((self.phase, ranking), [])
            if len(kept) < self.KEEP or value > min(getattr(k, ranking) for k in kept):
                kept.append(cb)
                kept.sort(key=lambda k: -getattr(k, ranking))
                del kept[self.KEEP :]

    def install(self) -> None:
        """Wrap ``Handle._run``, which runs every callback and task step of the loop."""
        gc.callbacks.append(self._on_gc)
        sys.setswitchinterval(0.001)  # let the sampler in while a callback holds the GIL
        threading.Thread(target=self._sample, daemon=True, name="stack-sampler").start()
        run = asyncio.events.Handle._run
        watch = self

        def timed_run(handle: asyncio.events.Handle) -> None:
            samples: Counter[str] = Counter()
            watch._current = samples
            wall, cpu, pauses = time.perf_counter(), time.thread_time(), len(watch.gc_pauses)
            run(handle)
            wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
            watch._current = None
            watch.count += 1
            in_gc = sum(watch.gc_pauses[pauses:])
            it = watch._iteration  # every callback counts in its pass: a thousand short ones add up
            it[0] += wall
            it[1] += cpu
            it[2] += in_gc
            it[3] += 1
            what = describe(handle)
            it[4] += what == "trigger task"
            if wall < 0.002:
                return
            cb = Callback(wall, cpu, in_gc, what, samples)
            if not cb.what.startswith("benchmark"):
                watch._keep(cb)

        asyncio.events.Handle._run = timed_run  # type: ignore[method-assign, assignment]
        run_once = asyncio.base_events.BaseEventLoop._run_once  # type: ignore[attr-defined]

        def timed_run_once(loop: asyncio.base_events.BaseEventLoop) -> None:
            watch._iteration = [0.0, 0.0, 0.0, 0, 0]
            run_once(loop)
            it = watch._iteration
            if it[0] > watch.longest_pass.get(watch.phase, (0.0,))[0]:
                watch.longest_pass[watch.phase] = (it[0], it[1], it[2], it[3], it[4])

        asyncio.base_events.BaseEventLoop._run_once = timed_run_once  # type: ignore[attr-defined]

    def uninstall(self) -> None:
        self._stop.set()
        sys.setswitchinterval(0.005)

    def longest(self, phase: str, ranking: str) -> Callback | None:
        kept = self.slowest.get((phase, ranking))
        return kept[0] if kept else None

    async def heartbeat(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            before = loop.time()
            await asyncio.sleep(HEARTBEAT_S)
            self.lags.append(loop.time() - before - HEARTBEAT_S)
            if len(self.lags) % 20 == 0:
                self.peak_rss = max(self.peak_rss, rss_mb())

    async def airflow_watchdog(self, stop: asyncio.Event) -> None:
        """``TriggerRunner.block_watchdog`` of Airflow 3.3, counting instead of logging."""
        while not stop.is_set():
            last_run, pauses = time.monotonic(), len(self.gc_pauses)
            await asyncio.sleep(0.1)
            in_gc = sum(self.gc_pauses[pauses:])
            self.watchdog.append((self.phase, time.monotonic() - last_run, in_gc))


def describe(handle: asyncio.events.Handle) -> str:
    """Which task (or callback) a handle runs: ``trigger``, ``benchmark`` or what asyncio names."""
    callback = getattr(handle, "_callback", None)
    task = getattr(callback, "__self__", None)
    if isinstance(task, asyncio.Task):
        name = task.get_name()
        return "trigger task" if name.startswith("trigger-") else f"benchmark task {name}"
    qualname = getattr(callback, "__qualname__", repr(callback))
    return f"callback {qualname}"


async def run_triggers(
    triggers: list[Any], looks: dict[int, int], emu: EmulatorProcess, watch: LoopWatch
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    anyio.Event()  # as TriggerRunner.arun does before any trigger runs (it loads anyio's backend)
    helpers = [
        asyncio.create_task(watch.heartbeat(stop), name="heartbeat"),
        asyncio.create_task(watch.airflow_watchdog(stop), name="watchdog"),
    ]
    received: list[tuple[float, Any, dict[str, Any]]] = []

    async def consume(trigger: Any) -> None:
        async for event in trigger.run():  # what the triggerer does with each trigger
            received.append((time.time(), trigger, event.payload))

    def fewest_looks() -> int:
        return min(looks.get(id(t.watch), 0) for t in triggers if not t.control)

    watch.tracked.append(len(gc.get_objects()))
    cpu_start = time.process_time()
    start = time.time()
    tasks = [asyncio.create_task(consume(t), name=f"trigger-{i}") for i, t in enumerate(triggers)]
    deadline = loop.time() + DEADLINE_S
    marks: list[tuple[float, float, dict[str, Any]]] = []  # (monotonic, CPU, counters) per round
    for round_ in range(1, LOOKS_BEFORE_FLIP + 1):  # wait until every trigger has looked 1, 2, 3 times
        while fewest_looks() < round_ and loop.time() < deadline:
            await asyncio.sleep(0.01)
        if round_ == 1:
            watch.tracked.append(len(gc.get_objects()))
            watch.phase = "after it"
        counters = await loop.run_in_executor(None, emu.ask, "counters")
        marks.append((time.monotonic(), time.process_time(), counters))
    rounds_time = time.time() - start
    flip = await loop.run_in_executor(None, emu.ask, "flip")  # replies once every backup is flipped
    _, pending = await asyncio.wait(tasks, timeout=max(1.0, deadline - loop.time()))
    for task in pending:
        task.cancel()
    stop.set()
    await asyncio.gather(*helpers)
    return {
        "rounds_time": rounds_time,
        "marks": marks,
        "cpu_start": cpu_start,
        "flip": flip,
        "events": received,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="same run (it is short already)")
    parser.add_argument("--triggers", type=int, default=1000)
    parser.add_argument("--graphs", type=int, default=10)
    parser.add_argument("--poll", type=float, default=5.0)
    parser.add_argument("--latency-ms", type=int, default=200)
    parser.add_argument(
        "--backlog", type=int, default=1024, help="emulator listen backlog (stdlib default: 5)"
    )
    parser.add_argument(
        "--gc-freeze", action="store_true", help="gc.freeze() after start-up (Airflow does not)"
    )
    args = parser.parse_args()
    n, graphs = args.triggers, args.graphs
    data = ("--graphs", str(graphs), "--backups", str(3 * graphs), "--pending", str(graphs))
    faults = f"latency:ms={args.latency_ms}:scope=all"
    with EmulatorProcess(*data, "--faults", faults, "--backlog", str(args.backlog)) as emu:
        os.environ.update(emu.conn_env("password"))
        # What a triggerer process has imported before its first trigger runs (3.3's trigger runner
        # module imports the supervisor, its comms and anyio): their import is not a trigger's cost.
        import airflow.jobs.triggerer_job_runner  # noqa: F401

        from airflow_provider_ges.hooks.ges import GesAsyncHook
        from airflow_provider_ges.shared import SHARED
        from airflow_provider_ges.triggers.ges import GesBackupTrigger

        looks: dict[int, int] = {}
        look = GesAsyncHook.look

        async def counted_look(hook: Any, watch: Any) -> Any:  # the real look, counted per wait
            try:
                return await look(hook, watch)
            finally:
                looks[id(watch)] = looks.get(id(watch), 0) + 1

        GesAsyncHook.look = counted_look  # type: ignore[method-assign]
        if args.gc_freeze:
            gc.collect()
            gc.freeze()
        rss_before = rss_mb()
        now = datetime.now(timezone.utc)
        start = time.time()
        pending = emu.info["pending"]  # [graph_id, backup_id, graph_name] per graph
        triggers = []
        for i in range(n):
            graph_id, _, graph_name = pending[i % graphs]
            control = i < graphs  # one per graph: newer_than in the future, must never pass
            newer_than = now + timedelta(hours=1) if control else now - timedelta(seconds=60, milliseconds=i)
            graph = {"graph_name": graph_name} if i % 2 else {"graph_id": graph_id}
            trigger = GesBackupTrigger(
                ges_conn_id="ges_default",
                gate={**graph, "newer_than": newer_than.isoformat()},
                poll_interval=args.poll,
                end_time=start + (LOOKS_BEFORE_FLIP + 3) * args.poll if control else start + DEADLINE_S,
            )
            trigger.control = control
            trigger.graph_id = graph_id
            triggers.append(trigger)
        emu.ask("reset")
        SHARED.fetches = 0
        watch = LoopWatch()
        get = SHARED.get

        async def timed_get(key: Any, fresh_for: float, fetch: Any) -> Any:  # when each fetch starts
            async def timed_fetch() -> Any:
                watch.fetches.append((time.monotonic(), key))
                return await fetch()

            return await get(key, fresh_for, timed_fetch)

        SHARED.get = timed_get  # type: ignore[method-assign]
        watch.install()
        cpu = time.process_time()
        result = asyncio.run(run_triggers(triggers, looks, emu, watch))
        cpu = time.process_time() - cpu
        watch.uninstall()
        result["fetches"] = SHARED.fetches
        counters = emu.ask("counters")
    report(args, triggers, looks, result, counters, watch, rss_before, cpu)


def report(
    args: argparse.Namespace,
    triggers: list[Any],
    looks: dict[int, int],
    result: dict[str, Any],
    counters: dict[str, Any],
    watch: LoopWatch,
    rss_before: float,
    cpu: float,
) -> None:
    n, poll, graphs = len(triggers), args.poll, args.graphs
    flip_at = result["flip"]["start"]
    waits, wrong = [], 0
    statuses: Counter[str] = Counter()
    for at, trigger, payload in result["events"]:
        status = payload.get("status")
        statuses[f"{status}{' (control)' if trigger.control else ''}"] += 1
        if status == "success" and not trigger.control:
            waits.append(at - flip_at)
            wrong += payload["backup"].get("graphId") != trigger.graph_id
    passing = n - graphs
    ok_events = (
        statuses.get("success", 0) == passing
        and statuses.get("timeout (control)", 0) == graphs
        and len(result["events"]) == n
        and wrong == 0
    )
    marks = result["marks"]
    (t1, cpu1, c1), (t3, cpu3, c3) = marks[0], marks[-1]

    def lists(c: dict[str, Any]) -> int:
        return int(c["list_graph_backups"] + c["list_backups"])

    steady = lists(c3) - lists(c1)
    mean_per_interval = steady / ((t3 - t1) / poll)
    # the most backup listings that started within any poll interval, from the first look to the flip
    starts = sorted(at for at, key in watch.fetches if key[1] == "backups" and at <= t3)
    per_interval = max((sum(1 for b in starts if a <= b < a + poll) for a in starts), default=0)
    total_looks = sum(looks.values())
    rounds = total_looks / n or math.nan
    all_lists = lists(counters)
    p50, p99, worst = (percentile(waits, q) for q in (50, 99, 100)) if waits else (math.nan,) * 3
    growth = (watch.peak_rss - rss_before) * 1000 / n
    bench = f"3 {n} triggers / {graphs} graphs{', gc.freeze()' if args.gc_freeze else ''}"
    rows = [
        Row(
            bench,
            f"events: success (each of its own graph) / timeout of the {graphs} controls / others",
            f"{statuses.get('success', 0)} / {statuses.get('timeout (control)', 0)}"
            f" / {len(result['events']) - statuses.get('success', 0) - statuses.get('timeout (control)', 0)}",
            target=f"{passing} / {graphs} / 0",
            ok=ok_events,
        ),
        Row(
            bench,
            f"listings per poll interval: the most started in any {poll:g} s until the flip (mean"
            f" {mean_per_interval:.1f} from the 1st to the {LOOKS_BEFORE_FLIP}rd round's end)",
            f"{per_interval}",
            other=str(n),
            ratio=f"{per_interval / n:.3f}",
            target=f"<= {graphs}",
            ok=per_interval <= graphs,
            goal="" if args.gc_freeze else "1 shared polls",
        ),
        Row(
            bench,
            f"listings in the first {LOOKS_BEFORE_FLIP} rounds of looks, per round (whole run:"
            f" {all_lists} for {rounds:.2f} rounds, {result['fetches']} shared fetches)",
            f"{lists(c3) / LOOKS_BEFORE_FLIP:.1f}",
            other=str(n),
            target=f"<= {graphs}",
            ok=lists(c3) / LOOKS_BEFORE_FLIP <= graphs,
        ),
        Row(
            bench,
            f"graph-list requests (the {n // 2} triggers named by graph name look the id up)",
            str(counters["list_graphs"]),
            target="<= 1",
            ok=counters["list_graphs"] <= 1,
            goal="" if args.gc_freeze else "1 shared polls",
        ),
        Row(
            bench,
            "token requests",
            str(counters["create_token"]),
            target="1",
            ok=counters["create_token"] == 1,
            goal="" if args.gc_freeze else "1 shared polls",
        ),
        Row(
            bench,
            f"flip -> event p50 / p99 / max, s (poll {poll:g} s, {args.latency_ms} ms latency)",
            f"{p50:.2f} / {p99:.2f} / {worst:.2f}",
            target=f"p99 <= {poll + 1:g}",
            ok=p99 <= poll + 1,
            goal="" if args.gc_freeze else "1 shared polls",
        ),
        Row(
            bench,
            "peak RSS growth of the event-loop process, MB per 1,000 triggers",
            f"{growth:.0f}",
            target="<= 100",
            ok=growth <= 100,
            goal="" if args.gc_freeze else "1 shared polls",
        ),
    ]
    for phase in ("first look", "after it"):
        own = watch.longest(phase, "own")
        wall = watch.longest(phase, "wall")
        own_ms = own.own * 1000 if own else 0.0
        rows.append(
            Row(
                bench,
                f"longest loop callback of the triggers, thread CPU without its GC pauses, ms ({phase};"
                f" its wall {own.wall * 1000 if own else 0:.0f})",
                f"{own_ms:.0f}",
                target=f"<= {LOOP_TARGET_MS:g}",
                ok=own_ms <= LOOP_TARGET_MS,
                goal="" if args.gc_freeze else "3 never blocks the loop",
            )
        )
        rows.append(
            Row(
                bench,
                f"longest loop callback with its GC pauses, ms ({phase}; GC in it"
                f" {wall.gc * 1000 if wall else 0:.0f})",
                f"{wall.wall * 1000 if wall else 0:.0f}",
            )
        )
    for phase in ("first look", "after it"):
        wall_s, cpu_s, gc_s, callbacks, steps = watch.longest_pass.get(phase, (0.0, 0.0, 0.0, 0, 0))
        rows.append(
            Row(
                bench,
                f"longest pass over the ready callbacks (back to back), ms wall ({phase}: CPU"
                f" {cpu_s * 1000:.0f}, GC {gc_s * 1000:.0f}; {callbacks} callbacks, {steps} trigger steps)",
                f"{wall_s * 1000:.0f}",
            )
        )
    blocked = [(phase, s, in_gc) for phase, s, in_gc in watch.watchdog if s > WATCHDOG_THRESHOLD_S]
    first = sum(1 for phase, _, _ in blocked if phase == "first look")
    # a warning the GC explains: without the collections inside it, the sleep was on time
    not_gc = [(phase, s) for phase, s, in_gc in blocked if s - in_gc > WATCHDOG_THRESHOLD_S]
    rows += [
        Row(
            bench,
            f"Airflow watchdog 'async thread was blocked' warnings (> {WATCHDOG_THRESHOLD_S:g} s):"
            " first look + after it (longest sleep(0.1) / GC inside it, s: "
            + ", ".join(f"{s:.2f}/{in_gc:.2f}" for _, s, in_gc in blocked[:6])
            + ")",
            f"{first} + {len(blocked) - first}",
        ),
        Row(
            bench,
            "of those, warnings the GC pauses inside them do not explain (the sleep minus its GC"
            f" pauses still > {WATCHDOG_THRESHOLD_S:g} s): the loop blocked by code",
            f"{len(not_gc)}",
            target="0",
            ok=not not_gc,
            goal="" if args.gc_freeze else "3 never blocks the loop",
        ),
        Row(
            bench,
            f"heartbeat lag p99 / max, ms ({watch.count:,} callbacks)",
            f"{percentile(watch.lags, 99) * 1000:.0f} / {max(watch.lags) * 1000:.0f}",
        ),
        Row(
            bench,
            "full GC collections (generation 2): first look + after it (their pauses, ms: "
            + ", ".join(f"{pause * 1000:.0f}" for _, pause in watch.full_gcs[:8])
            + ")",
            f"{sum(1 for p, _ in watch.full_gcs if p == 'first look')}"
            f" + {sum(1 for p, _ in watch.full_gcs if p == 'after it')}",
        ),
        Row(
            bench,
            f"objects the GC tracks: before the triggers start / added by {n} triggers (first look)",
            f"{watch.tracked[0]:,} / {watch.tracked[1] - watch.tracked[0]:+,}",
        ),
        Row(
            bench,
            "CPU of the event-loop process, s: first round / rounds 2-3 / whole run",
            f"{cpu1 - result['cpu_start']:.1f} / {cpu3 - cpu1:.1f} / {cpu:.1f}",
        ),
        Row(
            bench,
            "emulator: connections accepted / peak threads (one per open connection)",
            f"{counters['connections']} / {counters['threads_peak']}",
        ),
    ]
    gc_ms = max(watch.gc_pauses, default=0) * 1000
    notes = [
        f"{bench}: rounds 1-{LOOKS_BEFORE_FLIP} took {result['rounds_time']:.1f} s; longest GC pause"
        f" {gc_ms:.0f} ms ({len(watch.gc_pauses)} collections); events {dict(statuses)}"
    ]
    for phase in ("first look", "after it"):
        for ranking, title in (("own", "without GC"), ("wall", "with GC")):
            kept = watch.slowest.get((phase, ranking), [])[:3]
            if kept:
                notes.append(
                    f"{bench}, slowest callbacks {title} ({phase}; stack samples every"
                    f" {SAMPLE_S * 1000:g} ms): " + " | ".join(cb.describe() for cb in kept)
                )
    emit(rows, notes)


if __name__ == "__main__":
    main()
