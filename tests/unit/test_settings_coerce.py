"""``Spec.coerce``: strings for booleans and numbers (the original Zen Gateway's admin API), the same
checks as for JSON values; proxy lists with credentials masked and restored; stored rows that are
refused say so instead of silently showing the default."""

from __future__ import annotations

import json
import logging

import pytest

from zengate.settings import ALIASES, PROXY_CREDENTIALS, SPECS, SettingError, Settings
from zengate.store.models import Setting

BOOL = SPECS["require_auth"]
INT = SPECS["max_attempts"]  # 1..20
FLOAT = SPECS["upstream_read_timeout"]  # 0.05..3600


@pytest.mark.parametrize(("given", "expected"), [
    (True, True), (False, False),
    ("true", True), ("false", False), ("1", True), ("0", False), ("on", True), ("off", False),
    ("TRUE", True), (" False ", False), ("On", True), ("\tOFF\n", False),
])
def test_booleans_take_the_documented_strings(given, expected):
    assert BOOL.coerce("require_auth", given) is expected


@pytest.mark.parametrize("given", ["yes please", "yes", "", "2", "truthy", 1, 0, None, [], {}])
def test_other_booleans_are_refused_naming_the_setting_and_the_accepted_values(given):
    with pytest.raises(SettingError) as refused:
        BOOL.coerce("require_auth", given)
    assert refused.value.field == "require_auth"
    message = refused.value.message
    assert message.startswith("must be true or false") and '"on"/"off"' in message and '"1"/"0"' in message
    assert message.endswith(json.dumps(given))


@pytest.mark.parametrize(("spec", "given", "expected"), [
    (INT, "7", 7), (INT, " 7 ", 7), (INT, "+3", 3), (INT, "4.0", 4), (INT, "1e1", 10), (INT, 5, 5), (INT, 5.0, 5),
    (FLOAT, "2.5", 2.5), (FLOAT, "300", 300.0), (FLOAT, ".5", 0.5), (FLOAT, "1E2", 100.0), (FLOAT, 7, 7.0),
])
def test_numbers_take_numeric_strings(spec, given, expected):
    value = spec.coerce("n", given)
    assert value == expected and type(value) is spec.kind


@pytest.mark.parametrize(("spec", "given", "needle"), [
    (INT, "1.5", "must be a whole number, got 1.5"),
    (INT, 1.5, "must be a whole number, got 1.5"),
    (INT, "12abc", 'must be a whole number (or a string holding one), got "12abc"'),
    (INT, "", 'got ""'),
    (INT, "1_000", 'got "1_000"'),
    (INT, "0x10", 'got "0x10"'),
    (INT, "0", "must be at least 1, got 0"),
    (INT, "21", "must be at most 20, got 21"),
    (INT, "1" + "0" * 60, "must be at most 20, got 100000000000… (61 digits)"),
    (INT, "9" * 101, "must be a whole number (or a string holding one)"),
    (INT, True, "must be a number, got true"),
    (INT, "true", 'got "true"'),
    (FLOAT, "nan", 'must be a number (or a string holding one), got "nan"'),
    (FLOAT, "inf", 'got "inf"'),
    (FLOAT, "-Infinity", 'got "-Infinity"'),
    (FLOAT, "1e999", "must be a finite number, got inf"),
    (FLOAT, float("nan"), "must be a finite number, got nan"),
    (FLOAT, float("inf"), "must be a finite number, got inf"),
    (FLOAT, 10 ** 400, "must be a finite number"),
    (FLOAT, "0.01", "must be at least 0.05, got 0.01"),
    (FLOAT, False, "must be a number, got false"),
])
def test_bad_numbers_are_refused_like_their_json_forms(spec, given, needle):
    with pytest.raises(SettingError) as refused:
        spec.coerce("n", given)
    assert refused.value.field == "n" and needle in refused.value.message


def test_strings_and_objects_are_unchanged():
    assert SPECS["opencode_project"].coerce("opencode_project", "  myproj ") == "myproj"
    with pytest.raises(SettingError, match="must be a string, got 5"):
        SPECS["opencode_project"].coerce("opencode_project", 5)
    with pytest.raises(SettingError, match="must be an object"):
        SPECS["model_protocols"].coerce("model_protocols", "{}")


# --- masking -------------------------------------------------------------------------------------

STORED = "http://alice:s3cret@10.0.0.1:8080, 10.0.0.2:3128 socks5h://tok3n@proxy.example:1080"
SHOWN = "http://alice:***@10.0.0.1:8080,http://10.0.0.2:3128,socks5h://***@proxy.example:1080"


def test_proxy_lists_show_scheme_user_host_and_port_never_the_secret():
    assert SPECS["proxy_static"].masked is PROXY_CREDENTIALS
    assert PROXY_CREDENTIALS.mask(STORED) == SHOWN
    assert PROXY_CREDENTIALS.mask("") == ""
    assert PROXY_CREDENTIALS.mask("http://a%40b:p%3Ass@h:1") == "http://a%40b:***@h:1"  # quoted as in a URL
    assert PROXY_CREDENTIALS.mask("http://user:pw@[::1]:8080") == "http://user:***@[::1]:8080"
    assert PROXY_CREDENTIALS.mask("http://user:pw@host") == "***"  # not parseable: masked whole


def test_masked_entries_posted_back_keep_the_stored_secrets():
    assert PROXY_CREDENTIALS.restore(SHOWN, STORED) == (
        "http://alice:s3cret@10.0.0.1:8080,http://10.0.0.2:3128,socks5h://tok3n@proxy.example:1080")
    # reordered, one dropped, one new with its own password
    posted = "socks5h://***@PROXY.example:1080,http://carol:n3w@10.0.0.9:80"
    assert PROXY_CREDENTIALS.restore(posted, STORED) == "socks5h://tok3n@proxy.example:1080,http://carol:n3w@10.0.0.9:80"
    # a real password replaces the stored one; a value without *** is left exactly as posted
    assert PROXY_CREDENTIALS.restore("http://alice:other@10.0.0.1:8080 ", STORED) == "http://alice:other@10.0.0.1:8080 "


@pytest.mark.parametrize("posted", [
    "http://bob:***@10.0.0.1:8080",  # another user
    "https://alice:***@10.0.0.1:8080",  # another scheme
    "http://alice:***@10.0.0.1:8081",  # another port
    "http://***@10.0.0.1:8080",  # a lone user name where a user and password are stored
])
def test_a_masked_entry_that_matches_nothing_stored_is_refused(posted):
    with pytest.raises(ValueError) as refused:
        PROXY_CREDENTIALS.restore(posted, STORED)
    assert str(refused.value).startswith(posted + ": *** stands for the stored")
    assert "s3cret" not in str(refused.value) and "tok3n" not in str(refused.value)


# --- the alias and stored rows (a database) ------------------------------------------------------

@pytest.fixture
def settings(db_path):
    return Settings(cache_seconds=0)


def test_proxy_enabled_reads_and_writes_proxy_mode(settings):
    assert ALIASES["proxy_enabled"].target == "proxy_mode"
    assert settings.get("proxy_enabled") is False
    for before, posted, after in [("off", "true", "auto"), ("on", True, "on"), ("auto", "1", "auto"),
                                  ("on", "false", "off"), ("off", False, "off")]:
        settings.set("proxy_mode", before)
        assert settings.set("proxy_enabled", posted) is (after != "off")
        assert settings.get("proxy_mode") == after and settings.get("proxy_enabled") is (after != "off")
    assert Setting.get_or_none(Setting.key == "proxy_enabled") is None  # never stored itself
    with pytest.raises(SettingError) as refused:
        settings.set("proxy_enabled", "maybe")
    assert refused.value.field == "proxy_enabled"


def test_listing_masks_and_describes(settings):
    settings.set("proxy_static", STORED)
    assert settings.get("proxy_static") == STORED.strip()  # the egress gets the real URLs
    assert settings.public()["proxy_static"] == SHOWN
    described = settings.describe()
    assert described["proxy_static"]["value"] == SHOWN and described["proxy_static"]["masked"] == "***"
    assert described["proxy_enabled"]["alias_of"] == "proxy_mode" and described["proxy_enabled"]["type"] == "boolean"
    assert "alias" in described["proxy_enabled"]["help"].lower() and "masked" not in described["proxy_mode"]
    assert "s3cret" not in json.dumps([settings.public(), described])


def test_a_string_setting_stored_as_raw_text_is_read(settings, caplog):
    """What showed proxy_static as "" while the database held it: a row written without JSON quotes
    (by hand, or by another tool) failed json.loads and was dropped silently."""
    Setting.insert(key="proxy_static", value="http://alice:s3cret@10.0.0.1:8080").execute()
    Setting.insert(key="require_auth", value='"true"').execute()  # a boolean stored as a string
    settings.refresh(force=True)
    assert settings.get("proxy_static") == "http://alice:s3cret@10.0.0.1:8080"
    assert settings.public()["proxy_static"] == "http://alice:***@10.0.0.1:8080"
    assert settings.get("require_auth") is True
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_refused_stored_value_is_logged_once_without_its_secret(settings, caplog):
    Setting.insert(key="proxy_static", value=json.dumps("http://alice:s3cret@10.0.0.1")).execute()  # no port
    Setting.insert(key="max_attempts", value="99").execute()
    with caplog.at_level(logging.WARNING, logger="zengate.settings"):
        for _ in range(3):
            settings.refresh(force=True)
    assert settings.get("proxy_static") == "" and settings.get("max_attempts") == 4  # the defaults
    messages = [r.getMessage() for r in caplog.records if r.name == "zengate.settings"]
    assert len(messages) == 2, messages
    assert any("proxy_static is refused (not shown: the value may hold credentials)" in m for m in messages)
    assert any("max_attempts is refused (must be at most 20, got 99)" in m for m in messages)
    assert "s3cret" not in caplog.text and "alice" not in caplog.text
