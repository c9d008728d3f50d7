"""The deployment tests' fixture: ``airflow_deployment``, one running deployment per test module
(``stack.Deployment``; a module sets ``DEPLOYMENT_EXECUTOR``, ``DEPLOYMENT_CONFIG`` and the like)."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Generator, Iterator

import pytest

pytest.register_assert_rewrite("tests.deployment.stack")

from tests.deployment.stack import CELERY, Deployment, DeploymentError, say  # noqa: E402


class _FailureLogs:
    """A pytest plugin, registered while a deployment runs: a failing test's report gets the tail
    of every process's output and the newest task logs."""

    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        if report.failed and "airflow_deployment" in getattr(item, "fixturenames", ()):
            try:
                text = self.deployment.failure_report()
            except Exception as err:  # never let the report hide the failure
                text = f"(could not collect the deployment's logs: {err!r})"
            report.sections.append(("Airflow deployment logs (tails)", text))
        return report


@pytest.fixture(scope="module")
def airflow_deployment(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    """A running deployment for the test module (see the module docstring)."""
    module = request.module
    executor = getattr(module, "DEPLOYMENT_EXECUTOR", "LocalExecutor")
    if executor == CELERY and not shutil.which("redis-server") and os.environ.get("GES_REQUIRE_REDIS") != "1":
        pytest.skip(
            "CeleryExecutor deployment: no 'redis-server' on PATH (Debian: apt-get install redis-server)"
        )
    deployment = Deployment(
        tmp_path_factory.mktemp("airflow-deployment"),
        config=getattr(module, "DEPLOYMENT_CONFIG", None),
        executor=executor,
        workers=getattr(module, "DEPLOYMENT_WORKERS", 2),
        concurrency=getattr(module, "DEPLOYMENT_WORKER_CONCURRENCY", 4),
        triggerers=getattr(module, "DEPLOYMENT_TRIGGERERS", 1),
    )
    plugin = _FailureLogs(deployment)
    request.config.pluginmanager.register(plugin, f"ges-deployment-{id(deployment)}")
    try:
        try:
            deployment.start()
        except BaseException as err:
            raise DeploymentError(f"{err}\n{deployment.failure_report()}") from err
        up = ", ".join(f"{k} {v:.1f} s" for k, v in deployment.timings.items())
        say(request.config, f"\nAirflow deployment under {deployment.base} up (cumulative): {up}")
        yield deployment
    finally:
        started = len(deployment.timings)
        t0 = time.monotonic()
        deployment.stop()
        stops = list(deployment.timings.items())[started:]
        say(
            request.config,
            f"\nAirflow deployment stopped in {time.monotonic() - t0:.1f} s: "
            + ", ".join(f"{k} {v:.1f}" for k, v in stops),
        )
        request.config.pluginmanager.unregister(plugin)
