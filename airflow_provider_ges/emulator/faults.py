"""Fault injection and "hostile server" options.

A fault spec is a comma-separated list of rules, each ``kind[:key=value]...``, plus an optional
``seed=N`` item for the random rules::

    429:every=5:retry_after=1,500:every=7,ges7006:every=11,drop:every=13,html:every=17,latency:ms=50

Kinds: ``429`` (with ``Retry-After``), ``500``/``502``/``503``/``504`` (gateway-style body; IAM-style on
the token endpoint), ``ges7006`` (HTTP 400, GES.7006), ``drop`` (close the connection, no response),
``stall`` (wait ``s`` seconds, then answer normally), ``html`` (HTTP 200 with an HTML page),
``latency`` (wait ``ms`` milliseconds before every matching request; adds up with other rules).

Keys: ``every=N`` fires on the Nth, 2Nth... matching request (default 1: every one); ``rate=P`` fires
with probability P instead (seeded, so a run is reproducible); ``count=N`` fires at most N times;
``scope=`` which requests a rule sees: ``ges`` (every GES call, the default), ``list`` (the list calls:
backups, graph backups, graphs, jobs), ``iam`` (the token endpoint), ``all``, ``v1`` or ``v2`` (the GES
calls of that API version), or one call, through either version: ``create`` (create backup), ``delete``
(delete backup), ``stop``, ``start``, ``action`` (stop and start), ``export`` or ``import`` (v2's
export and import of a backup);
``retry_after=S`` (429, default 1; fractions allowed); ``s=S`` (stall seconds, default 1); ``ms=N``
(latency); ``after=1`` (``drop`` and ``500``/``502``/``504`` only): the call is carried out first and
then its reply is lost, replaced by the fault. An ``after`` rule sees only the calls that succeeded.

Each rule counts the requests in its scope on its own; on one request the first firing rule (in spec
order) wins. Example: the token endpoint failing for its first three calls is ``503:scope=iam:count=3``;
a start whose job runs but whose reply times out once is ``504:scope=start:after=1:count=1``.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

FAULT_KINDS = ("429", "500", "502", "503", "504", "ges7006", "drop", "stall", "html", "latency")
SCOPES = (
    "ges",
    "list",
    "iam",
    "all",
    "v1",
    "v2",
    "create",
    "delete",
    "stop",
    "start",
    "action",
    "export",
    "import",
)
#: The kinds that may replace the reply of a call already carried out (``after``).
AFTER_KINDS = ("drop", "500", "502", "504")
_INT_OPTIONS = frozenset({"every", "count"})
_FLOAT_OPTIONS = frozenset({"rate", "retry_after", "s", "ms"})
_BOOL_VALUES = {"1": True, "true": True, "0": False, "false": False}


@dataclass(frozen=True)
class FaultRule:
    """One fault: what to inject, on which requests, how often."""

    kind: str
    every: int | None = None
    rate: float | None = None
    count: int | None = None
    scope: str = "ges"
    retry_after: float = 1.0
    s: float = 1.0
    ms: float = 0.0
    after: bool = False

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {', '.join(FAULT_KINDS)}")
        if self.scope not in SCOPES:
            raise ValueError(f"unknown fault scope {self.scope!r}; expected one of {', '.join(SCOPES)}")
        if self.every is not None and self.rate is not None:
            raise ValueError("a fault rule takes 'every' or 'rate', not both")
        if self.every is not None and self.every < 1:
            raise ValueError("'every' must be at least 1")
        if self.rate is not None and not 0 <= self.rate <= 1:
            raise ValueError("'rate' must be between 0 and 1")
        if self.count is not None and self.count < 0:
            raise ValueError("'count' must not be negative")
        if min(self.retry_after, self.s, self.ms) < 0:
            raise ValueError("durations must not be negative")
        if self.after and self.kind not in AFTER_KINDS:
            raise ValueError(
                f"fault kind {self.kind!r} cannot take 'after' (only {', '.join(AFTER_KINDS)} can)"
            )

    @property
    def status(self) -> int:
        """The HTTP status this fault answers with (0 when it sends none of its own)."""
        return {"ges7006": 400, "html": 200}.get(self.kind, int(self.kind) if self.kind.isdigit() else 0)


@dataclass(frozen=True)
class Faults:
    """A parsed fault spec: rules and the seed for ``rate`` rules."""

    rules: tuple[FaultRule, ...] = ()
    seed: int = 0


def parse_faults(spec: str, seed: int = 0) -> Faults:
    """Parse the string form (see the module docstring); a ``seed=N`` item overrides ``seed``."""
    rules: list[FaultRule] = []
    for item in filter(None, (part.strip() for part in spec.split(","))):
        kind, *options = item.split(":")
        if "=" in kind and not options:
            key, _, value = kind.partition("=")
            if key.strip() != "seed":
                raise ValueError(f"unknown fault setting {key!r} (only 'seed=N' stands alone)")
            seed = int(value)
            continue
        kwargs: dict[str, object] = {}
        for option in options:
            key, sep, value = option.partition("=")
            if not sep or key not in _INT_OPTIONS | _FLOAT_OPTIONS | {"scope", "after"}:
                raise ValueError(f"bad fault option {option!r} in {item!r}")
            try:
                kwargs[key] = _option_value(key, value)
            except (ValueError, KeyError):
                raise ValueError(f"bad value in fault option {option!r}") from None
        rules.append(FaultRule(kind.strip(), **kwargs))  # type: ignore[arg-type]
    return Faults(tuple(rules), seed)


def _option_value(key: str, value: str) -> object:
    if key == "scope":
        return value
    if key == "after":
        return _BOOL_VALUES[value.lower()]
    return int(value) if key in _INT_OPTIONS else float(value)


def as_faults(value: str | Faults | Iterable[FaultRule] | None, seed: int = 0) -> Faults:
    """Accept the string form, a :class:`Faults`, a list of rules, or ``None`` (no faults)."""
    if value is None:
        return Faults(seed=seed)
    if isinstance(value, str):
        return parse_faults(value, seed)
    if isinstance(value, Faults):
        return value
    return Faults(tuple(value), seed)


@dataclass
class _RuleState:
    rule: FaultRule
    seen: int = 0
    fired: int = 0


@dataclass(frozen=True)
class Decision:
    """What to do to one request: wait ``latency`` seconds, then inject ``rule`` (if any)."""

    latency: float = 0.0
    rule: FaultRule | None = None


NO_FAULT = Decision()


class FaultPlan:
    """Thread-safe, deterministic decisions for a sequence of requests."""

    def __init__(self, faults: Faults) -> None:
        self._lock = threading.Lock()
        self._states = [_RuleState(rule) for rule in faults.rules]
        self._rng = random.Random(faults.seed)

    def decide(self, scopes: Sequence[str], *, after: bool = False) -> Decision:
        """Count a request that belongs to ``scopes`` and say which faults hit it: the rules that act
        before the call, or (``after``) those that replace the reply of a call that succeeded."""
        if not self._states:
            return NO_FAULT
        latency = 0.0
        chosen: FaultRule | None = None
        with self._lock:
            for state in self._states:
                rule = state.rule
                if rule.after != after or rule.scope not in scopes:
                    continue
                state.seen += 1
                if rule.count is not None and state.fired >= rule.count:
                    continue
                if rule.rate is not None:
                    fires = self._rng.random() < rule.rate
                else:
                    fires = state.seen % (rule.every or 1) == 0
                if not fires or (chosen is not None and rule.kind != "latency"):
                    continue
                state.fired += 1
                if rule.kind == "latency":
                    latency += rule.ms / 1000
                else:
                    chosen = rule
        return Decision(latency, chosen)


@dataclass(frozen=True)
class Hostile:
    """Misbehaviour of the backup list calls, for testing clients that must not trust the server.

    ``ignore_offset``: always serve the first page. ``inflate_count``: report ``backupCount`` this much
    too high. ``grow_count``: report one more in ``backupCount`` on every list call. ``oversize_pages``:
    return up to this many items more than ``limit`` asked for.
    """

    ignore_offset: bool = False
    inflate_count: int = 0
    grow_count: bool = False
    oversize_pages: int = 0
