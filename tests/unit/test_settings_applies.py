"""When a saved setting takes effect, as the admin API says it (``applies``) and the dashboard shows it.

Every worker of the instance: at the next request (the shared generation, tests/e2e/test_shared_state_e2e.py
proves it with an hour's TTL); the other instances: through Redis when a relay is up, otherwise within
``ZENGATE_SETTINGS_TTL``; the few settings read later than at the next request say when.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tests.support.gateway import ADMIN_PASSWORD
from zengate.settings import APPLIES_LATER, SPECS, Settings

HERE = "at the next request on every worker of this instance"


def settings_with(ttl: float, relay=None) -> Settings:
    settings = Settings(cache_seconds=ttl)
    settings.relay = relay
    return settings


@pytest.mark.parametrize(("ttl", "relay", "there"), [
    (2.0, None, "other instances sharing its database: within 2 s (ZENGATE_SETTINGS_TTL)"),
    (3600, None, "other instances sharing its database: within 3600 s (ZENGATE_SETTINGS_TTL)"),
    (0.5, None, "other instances sharing its database: within 0.5 s (ZENGATE_SETTINGS_TTL)"),
    (0, None, "other instances sharing its database: at their next request (ZENGATE_SETTINGS_TTL)"),
    (2.0, SimpleNamespace(up=True),
     "other instances: as soon as Redis relays it (within 2 s at most, ZENGATE_SETTINGS_TTL)"),
    (30, SimpleNamespace(up=False),
     "other instances: within 30 s (ZENGATE_SETTINGS_TTL), Redis being unreachable"),
])
def test_the_other_instances_part_follows_the_relay_and_the_ttl(ttl, relay, there):
    settings = settings_with(ttl, relay)
    assert settings.applies() == f"{HERE}; {there}"
    assert settings.applies("require_auth") == f"{HERE}; {there}"


def test_settings_read_later_say_when_and_an_alias_speaks_for_its_target():
    settings = settings_with(2.0)
    there = "other instances sharing its database: within 2 s (ZENGATE_SETTINGS_TTL)"
    assert settings.applies("admin_session_hours") == (
        "at the next admin login on every worker of this instance (sessions already open keep their end); " + there)
    assert settings.applies("log_retention_days") == f"at the next retention pass, within a minute; {there}"
    assert settings.applies("proxy_enabled") == settings.applies("proxy_mode") == f"{HERE}; {there}"
    assert set(APPLIES_LATER) <= {name for name, spec in SPECS.items() if spec.public}  # no stale names


def test_the_admin_api_says_when_a_saved_setting_applies(client, admin_headers):
    there = "other instances sharing its database: at their next request (ZENGATE_SETTINGS_TTL)"  # tests: TTL 0
    listed = client.get("/_admin/settings", headers=admin_headers).get_json()
    assert listed["applies"] == f"{HERE}; {there}"
    r = client.post("/_admin/settings", json={"key": "max_attempts", "value": 3}, headers=admin_headers)
    assert r.status_code == 200
    assert r.get_json() == {"key": "max_attempts", "value": 3, "applies": f"{HERE}; {there}"}
    r = client.post("/_admin/settings", json={"key": "admin_session_hours", "value": 2}, headers=admin_headers)
    assert r.get_json()["applies"].startswith("at the next admin login on every worker of this instance")
    r = client.post("/_admin/settings", json={"key": "proxy_enabled", "value": "false"}, headers=admin_headers)
    assert r.get_json() == {"key": "proxy_enabled", "value": False, "applies": f"{HERE}; {there}"}


def test_a_refused_setting_says_nothing_about_applying_and_stores_nothing(client, admin_headers):
    r = client.post("/_admin/settings", json={"key": "fallbacks", "value": {"big-pickle": "gpt-5-nano"}},
                    headers=admin_headers)
    assert r.status_code == 400
    assert r.get_json()["error"]["message"] == "fallbacks: big-pickle: must be a list of model names"
    assert r.get_json()["error"]["param"] == "fallbacks" and "applies" not in r.get_json()
    assert client.get("/_admin/settings", headers=admin_headers).get_json()["settings"]["fallbacks"] == {}


def test_the_answer_with_a_long_ttl(make_app):
    app = make_app(settings_ttl=3600)
    client = app.test_client()
    token = client.post("/_admin/login", json={"password": ADMIN_PASSWORD}).get_json()["token"]
    r = client.post("/_admin/settings", json={"key": "fallbacks", "value": {"big-pickle": ["gpt-5-nano"]}},
                    headers={"Authorization": f"Bearer {token}"})
    assert r.get_json() == {"key": "fallbacks", "value": {"big-pickle": ["gpt-5-nano"]}, "applies": (
        f"{HERE}; other instances sharing its database: within 3600 s (ZENGATE_SETTINGS_TTL)")}


def test_a_model_override_saying_backend_moves_the_model_as_tier_does():
    """docs/routing.md: model_overrides take ``tier``/``backend`` as the models file does (it used to raise)."""
    from zengate.exchange.catalog import ModelCatalog

    catalog = ModelCatalog()
    assert catalog.info("big-pickle", {"big-pickle": {"backend": "go", "max_output": 10}}).tier == "go"
    assert catalog.info("big-pickle", {"big-pickle": {"tier": "zen", "backend": "go"}}).tier == "go"
    assert catalog.info("big-pickle", {"big-pickle": {"tier": "go"}}).tier == "go"
