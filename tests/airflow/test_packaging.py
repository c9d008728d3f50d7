"""Packaging metadata: one version everywhere, the supported range declared as tested.

The wheel itself (built, twine-checked, installed with Airflow, used) is checked by scripts/check_wheel.sh
(`make check-wheel`, run by .ci/run); these are the cheap checks on the installed distribution.
"""

from __future__ import annotations

import re
import sys
from importlib.metadata import distribution
from pathlib import Path

import airflow_provider_ges

ROOT = Path(__file__).resolve().parents[2]
if sys.version_info >= (3, 11):
    import tomllib
else:  # no TOML reader in the 3.10 stdlib: the pyproject checks run on 3.11+
    tomllib = None


def test_one_version_everywhere() -> None:
    dist = distribution("airflow-provider-ges")
    version = airflow_provider_ges.__version__
    assert dist.version == version, "stale install metadata: reinstall (make venv / the matrix re-syncs)"
    assert airflow_provider_ges.get_provider_info()["versions"] == [version]
    assert f"## {version}" in (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")


def test_declared_range_matches_the_matrix() -> None:
    dist = distribution("airflow-provider-ges")
    requires = dist.requires or []
    airflow = [r for r in requires if re.match(r"apache-airflow\s*[<>=!~(]", r)]
    assert airflow == ["apache-airflow>=3.1"], airflow
    assert dist.metadata["Requires-Python"] == ">=3.10"
    classifiers = dist.metadata.get_all("Classifier") or []
    tested = {f"Programming Language :: Python :: 3.{minor}" for minor in (10, 11, 12, 13)}
    assert tested <= set(classifiers)
    assert {"Framework :: Apache Airflow", "Framework :: Apache Airflow :: Provider"} <= set(classifiers)
    assert dist.metadata["License-Expression"] == "Apache-2.0"


def test_license_and_package_data() -> None:
    license_text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in license_text and "Version 2.0, January 2004" in license_text
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    if tomllib is not None:
        data = tomllib.loads(pyproject)
        assert data["project"]["license-files"] == ["LICENSE"]
        setuptools = data["tool"]["setuptools"]
        assert setuptools["dynamic"]["version"] == {"attr": "airflow_provider_ges.__version__"}
        assert "*.json" in setuptools["package-data"]["airflow_provider_ges.emulator"]
    # every data file the emulator ships is matched by the package-data glob
    emulator = ROOT / "airflow_provider_ges" / "emulator"
    data_files = [p.name for p in emulator.iterdir() if p.is_file() and p.suffix not in (".py", ".pyc")]
    assert all(name.endswith(".json") for name in data_files), data_files
