"""The connection form: one declaration, the same fields in Airflow 3.2+ and in 3.1."""

from __future__ import annotations

import airflow_provider_ges
from airflow_provider_ges._compat import AIRFLOW_V_3_2_PLUS
from airflow_provider_ges.hooks.ges import GesHook

ISSUE_FIELDS = {"project_id", "domain_name", "region", "iam_endpoint", "auth_type", "verify", "timeout"}


def declared() -> dict:
    (conn_type,) = airflow_provider_ges.get_provider_info()["connection-types"]
    assert conn_type["connection-type"] == "ges" and conn_type["hook-name"] == "Huawei Cloud GES"
    return conn_type


def test_provider_info_and_hook_widgets_agree_field_by_field() -> None:
    fields = declared()["conn-fields"]
    widgets = GesHook.get_connection_form_widgets()
    assert set(fields) >= ISSUE_FIELDS
    assert set(widgets) == set(fields)
    for name, spec in fields.items():
        field = widgets[name]
        assert field.args[0] == spec["label"], name
        assert field.kwargs["description"] == spec["description"], name
        assert field.kwargs["default"] == spec["schema"].get("default"), name
        assert spec["description"] and len(spec["description"]) < 100, name  # one line each
    assert widgets["security_token"].field_class.__name__ == "PasswordField"
    assert fields["security_token"]["schema"]["format"] == "password"
    for flag, default in (("allow_http", False), ("iam_cache", True)):
        assert widgets[flag].field_class.__name__ == "BooleanField", flag
        assert fields[flag]["schema"] == {"type": ["boolean", "null"], "default": default}, flag
    assert widgets["proxies"].field_class.__name__ == "StringField"


def test_every_extra_the_connection_reads_has_a_field() -> None:
    from airflow_provider_ges.connection import ConnectionExtras
    from airflow_provider_ges.form import CONN_FIELDS

    assert set(CONN_FIELDS) == set(ConnectionExtras.model_fields)
    for name, spec in CONN_FIELDS.items():
        default = ConnectionExtras.model_fields[name].default
        if "default" in spec["schema"] and name != "verify":  # verify: the UI's text "true" is True
            assert spec["schema"]["default"] == default, name


def test_provider_info_and_hook_behaviour_agree() -> None:
    behaviour = declared()["ui-field-behaviour"]
    from_hook = GesHook.get_ui_field_behaviour()
    assert from_hook["hidden_fields"] == behaviour["hidden-fields"]
    assert from_hook["relabeling"] == behaviour["relabeling"]
    assert from_hook["placeholders"] == behaviour["placeholders"]
    assert "schema" in behaviour["hidden-fields"]
    assert "Access Key (AK)" in behaviour["relabeling"]["login"]
    assert "Secret Key (SK)" in behaviour["relabeling"]["password"]
    assert behaviour["placeholders"]["host"].startswith("https://ges.")


def test_airflow_providers_manager_registers_every_ges_field() -> None:
    """What the running Airflow itself builds for connection type ``ges``: from provider info on
    3.2+, from the hook's own methods on 3.1 (which only reads them from ``GesHook.__dict__``)."""
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    widgets = manager.connection_form_widgets
    fields = declared()["conn-fields"]
    for name, spec in fields.items():
        field = widgets[f"extra__ges__{name}"].field
        label = field["schema"]["title"] if AIRFLOW_V_3_2_PLUS else field.args[0]
        assert label == spec["label"], name
    assert widgets["extra__ges__security_token"].is_sensitive
    assert "get_connection_form_widgets" in GesHook.__dict__
    behaviour = manager.field_behaviours["ges"]
    assert behaviour["hidden_fields"] == ["schema"]
    assert behaviour["relabeling"]["login"] == "IAM user name, or Access Key (AK)"


def test_only_secret_fields_have_names_airflow_hides() -> None:
    """Airflow shows ``***`` for an extra whose name looks secret ("token", "proxies", ...): fine for
    a secret, a broken field for anything else."""
    from airflow_provider_ges._compat import secrets_masker
    from airflow_provider_ges.connection import SECRET_EXTRAS
    from airflow_provider_ges.form import CONN_FIELDS

    hidden = {name for name in CONN_FIELDS if secrets_masker().should_hide_value_for_key(name)}
    assert hidden == SECRET_EXTRAS
