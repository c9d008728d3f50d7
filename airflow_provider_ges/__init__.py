"""Apache Airflow provider for Huawei Cloud Graph Engine Service (GES) backups."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "get_provider_info"]


def get_provider_info() -> dict[str, Any]:
    """What Airflow's ProvidersManager reads through the ``apache_airflow_provider`` entry point."""
    return {
        "package-name": "airflow-provider-ges",
        "name": "Huawei Cloud GES",
        "description": "Huawei Cloud Graph Engine Service (GES): backup hooks, sensors and operators.",
        "versions": [__version__],
        "hooks": [
            {
                "integration-name": "Huawei Cloud GES",
                "python-modules": ["airflow_provider_ges.hooks.ges"],
            }
        ],
        "connection-types": [
            {"hook-class-name": "airflow_provider_ges.hooks.ges.GesHook", "connection-type": "ges"}
        ],
    }
