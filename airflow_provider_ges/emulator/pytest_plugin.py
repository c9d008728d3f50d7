"""pytest fixtures for the GES emulator (registered through the ``pytest11`` entry point).

``ges_emulator``: a running :class:`GesEmulator` (2 graphs, 12 backups, seed 1, 0.5 s backups, exports
and imports), one per test. Mark a test ``@pytest.mark.ges_emulator(**kwargs)`` to pass other
``GesEmulator`` arguments.
``ges_connection``: the same emulator with ``AIRFLOW_CONN_GES_DEFAULT`` set for the test.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from . import GesEmulator

FIXTURE_DEFAULTS: dict[str, Any] = {
    "graphs": 2,
    "backups": 12,
    "seed": 1,
    "backup_duration": 0.5,
    "export_duration": 0.5,
    "import_duration": 0.5,
}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "ges_emulator(**kwargs): GesEmulator arguments for the ges_emulator fixture"
    )


@pytest.fixture
def ges_emulator(request: pytest.FixtureRequest) -> Iterator[GesEmulator]:
    """A started emulator on a free loopback port, stopped after the test."""
    from . import GesEmulator

    marker = request.node.get_closest_marker("ges_emulator")
    kwargs = {**FIXTURE_DEFAULTS, **(marker.kwargs if marker else {})}
    with GesEmulator(**kwargs) as emulator:
        yield emulator


@pytest.fixture
def ges_connection(ges_emulator: GesEmulator, monkeypatch: pytest.MonkeyPatch) -> GesEmulator:
    """The ``ges_emulator`` with ``AIRFLOW_CONN_GES_DEFAULT`` pointing at it (password auth)."""
    for name, value in ges_emulator.connection_env().items():
        monkeypatch.setenv(name, value)
    return ges_emulator
