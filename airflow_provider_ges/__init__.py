"""Apache Airflow provider for Huawei Cloud Graph Engine Service (GES) backups."""

from __future__ import annotations

from typing import Any

from airflow_provider_ges.form import CONN_FIELDS, UI_FIELD_BEHAVIOUR

__version__ = "0.2.0"
DEFAULT_CONN_ID = "ges_default"
DEFAULT_PAGE_SIZE = 100

__all__ = ["__version__", "get_provider_info"]


def get_provider_info() -> dict[str, Any]:
    """What Airflow's ProvidersManager reads through the ``apache_airflow_provider`` entry point."""
    return {
        "package-name": "airflow-provider-ges",
        "name": "Huawei Cloud GES",
        "description": "Huawei Cloud Graph Engine Service (GES): backup hooks, sensors and operators.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "Huawei Cloud GES",
                "external-doc-url": "https://support.huaweicloud.com/intl/en-us/ges/",
                "tags": ["service"],
            }
        ],
        "hooks": [
            {
                "integration-name": "Huawei Cloud GES",
                "python-modules": ["airflow_provider_ges.hooks.ges"],
            }
        ],
        "connection-types": [
            {
                "hook-class-name": "airflow_provider_ges.hooks.ges.GesHook",
                "hook-name": "Huawei Cloud GES",
                "connection-type": "ges",
                "conn-fields": CONN_FIELDS,
                "ui-field-behaviour": UI_FIELD_BEHAVIOUR,
            }
        ],
        "triggers": [
            {
                "integration-name": "Huawei Cloud GES",
                "python-modules": ["airflow_provider_ges.triggers.ges"],
            }
        ],
        "sensors": [
            {
                "integration-name": "Huawei Cloud GES",
                "python-modules": ["airflow_provider_ges.sensors.ges"],
            }
        ],
        "operators": [
            {
                "integration-name": "Huawei Cloud GES",
                "python-modules": ["airflow_provider_ges.operators.ges"],
            }
        ],
        # Airflow 3.1-3.3 read ``asset-uris`` (``dataset-uris`` was Airflow 2's): ``ges://<graph>/backups``.
        "asset-uris": [{"schemes": ["ges"], "handler": "airflow_provider_ges.assets.sanitize_uri"}],
    }
