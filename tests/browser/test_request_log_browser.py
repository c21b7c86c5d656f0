"""The request log in a real browser: the model that answered beside the one asked for, the
answering-model and key-name filters, and the export links downloading what the filters match.

A request for ``free-auto`` is answered by ``big-pickle`` (auto routing, docs/routing.md), so the
two differ without any setting; two keys share a name, so the key-name filter spans both.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest

from tests.browser.conftest import PHONE, login
from tests.browser.test_dashboard_browser import HELLO, create_key_via_api, logged, nav, sdk

sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
expect = sync_api.expect

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

TEAM, SOLO = "Log Team", "solo key"
EXPORT_NAME = re.compile(r"zengate-requests-\d{8}T\d{6}Z\.(jsonl|csv)")


@pytest.fixture(scope="module")
def traffic(gateway, upstream) -> dict[str, list[str]]:
    """Three answered requests: a Log Team key asks for free-auto (big-pickle answers), another
    Log Team key asks for glm-4.7-free, the solo key asks for big-pickle. Returns the keys by name."""
    upstream.reset()
    gateway.set_setting("require_auth", False)
    keys = {TEAM: [create_key_via_api(gateway, TEAM) for _ in range(2)], SOLO: [create_key_via_api(gateway, SOLO)]}
    for key, model in [(keys[TEAM][0], "free-auto"), (keys[TEAM][1], "glm-4.7-free"), (keys[SOLO][0], "big-pickle")]:
        assert sdk(gateway, key).chat.completions.create(model=model, messages=HELLO).choices
    gateway.wait_for(lambda: len(logged(gateway, key_name=TEAM)) == 2 and logged(gateway, key_name=SOLO))
    return keys


def table_ids(page) -> list[int]:
    ids = page.locator("#requests-table tbody tr").evaluate_all("rows => rows.map(r => r.dataset.id)")
    return [int(i) for i in ids]


def apply(page, *, answered: str = "", key_name: str = "") -> None:
    page.get_by_label("Answered by", exact=True).fill(answered)
    page.get_by_label("Key name", exact=True).select_option(key_name)
    page.get_by_role("button", name="Apply").click()


def test_the_answering_model_is_shown_with_the_one_asked_for_and_both_filters_narrow_the_table(
        page, gw, traffic, screenshot):
    login(page, gw)
    nav(page, "Request log")
    key_names = page.get_by_label("Key name", exact=True)
    expect(key_names.locator("option", has_text=TEAM)).to_have_count(1)  # two keys, one name
    rows = page.locator("#requests-table tbody tr")

    apply(page, key_name=TEAM)
    expect(rows).to_have_count(2)
    assert table_ids(page) == [r["id"] for r in logged(gw, key_name=TEAM)]
    routed = rows.filter(has=page.locator(".asked"))
    expect(routed).to_have_count(1)
    model_cell = routed.locator("td").nth(1)
    expect(model_cell).to_contain_text("big-pickle")
    expect(model_cell.locator(".asked")).to_have_text("asked free-auto")
    expect(model_cell.locator(".asked")).to_be_visible()  # on the page, not only in a tooltip
    expect(rows.filter(has_text="glm-4.7-free").locator(".asked")).to_have_count(0)  # asked = answered
    expect(page.locator("#filters-count")).to_have_text("1 active")
    expect(page.locator("#requests-export-label")).to_have_text("Export 2 matching rows")
    screenshot(page, "request-log-answered")

    apply(page, answered="big-pickle", key_name=TEAM)
    expect(rows).to_have_count(1)
    expect(rows.first.locator(".asked")).to_have_text("asked free-auto")
    assert table_ids(page) == [r["id"] for r in logged(gw, upstream_model="big-pickle", key_name=TEAM)]

    apply(page, answered="big-pickle", key_name=SOLO)
    expect(rows).to_have_count(1)
    expect(rows.first.locator("td").nth(1)).to_have_text("big-pickle")
    assert rows.first.get_attribute("data-id") == str(logged(gw, key_name=SOLO)[0]["id"])

    apply(page, answered="free-auto")  # asked for, never the answer
    expect(page.locator("#requests-empty")).to_have_text("No requests match these filters.")
    expect(rows).to_have_count(0)
    # the answering model is suggested from the models the log showed
    assert "big-pickle" in page.locator("#answered-suggestions option").evaluate_all("os => os.map(o => o.value)")


def read_download(page, link_name: str) -> tuple[str, str]:
    with page.expect_download() as info:
        page.get_by_role("group", name=re.compile("^Export")).get_by_role("link", name=link_name).click()
    download = info.value
    assert download.failure() is None
    return download.suggested_filename, Path(download.path()).read_text(encoding="utf-8")


def test_the_export_links_download_the_filtered_rows(page, gw, traffic):
    login(page, gw)
    nav(page, "Request log")
    apply(page, key_name=TEAM)
    rows = page.locator("#requests-table tbody tr")
    expect(rows).to_have_count(2)
    shown = table_ids(page)
    expected = {r["id"]: r for r in logged(gw, key_name=TEAM)}

    name, text = read_download(page, "JSON Lines")
    assert EXPORT_NAME.fullmatch(name) and name.endswith(".jsonl")
    exported = [json.loads(line) for line in text.splitlines()]
    assert [r["id"] for r in exported] == shown
    assert exported == [expected[i] for i in shown]  # the log's own rows: no bodies by default
    assert {(r["model"], r["upstream_model"]) for r in exported} == {("free-auto", "big-pickle"),
                                                                      ("glm-4.7-free", "glm-4.7-free")}
    assert all(r["key_prefix"] in {k[:13] for k in traffic[TEAM]} for r in exported)
    assert not any(k in text for keys in traffic.values() for k in keys)  # prefixes only, never a key

    page.get_by_label("Include bodies").check()
    name, text = read_download(page, "CSV")
    assert EXPORT_NAME.fullmatch(name) and name.endswith(".csv")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    exported = list(reader)
    assert reader.fieldnames[:2] == ["id", "created_at"] and reader.fieldnames[-2:] == ["input_messages",
                                                                                        "output_content"]
    assert [int(r["id"]) for r in exported] == shown
    assert [r["upstream_model"] for r in exported] == [expected[i]["upstream_model"] for i in shown]
    assert all(json.loads(r["input_messages"]) == HELLO for r in exported)

    apply(page, answered="big-pickle", key_name=SOLO)  # the links follow the filters as applied
    expect(rows).to_have_count(1)
    _name, text = read_download(page, "CSV")
    (only,) = csv.DictReader(io.StringIO(text, newline=""))
    assert int(only["id"]) == logged(gw, key_name=SOLO)[0]["id"] and only["model"] == "big-pickle"


def test_the_filters_and_export_fit_a_phone_in_dark_mode(open_page, gw, traffic, screenshot):
    page, _console = open_page(viewport=PHONE, color_scheme="dark", scale=2)
    login(page, gw)
    page.goto(gw.url + "/_admin/ui#requests")
    page.locator("#filters-details > summary").click()  # closed on a phone, to leave room for the log
    for label in ("Model asked for", "Answered by", "Status", "Key name", "Key prefix", "From", "To"):
        control = page.get_by_label(label, exact=True)
        control.scroll_into_view_if_needed()
        expect(control).to_be_in_viewport(ratio=1)  # wrapped onto rows, none off the side
    apply(page, key_name=TEAM)
    rows = page.locator("#requests-table tbody tr")
    expect(rows).to_have_count(2)
    asked = rows.locator(".asked")
    expect(asked).to_have_text("asked free-auto")
    asked.scroll_into_view_if_needed()
    expect(asked).to_be_in_viewport()
    for link in ("JSON Lines", "CSV"):
        control = page.get_by_role("link", name=link, exact=True)
        control.scroll_into_view_if_needed()
        expect(control).to_be_in_viewport(ratio=1)
    expect(page.get_by_label("Include bodies")).to_be_in_viewport(ratio=1)
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the request log is wider than the phone by {overflow}px"
    wrap = page.evaluate("(() => { const w = document.querySelector('#requests-table').closest('.table-wrap');"
                         " return w.scrollWidth - w.clientWidth; })()")
    assert wrap <= 0, f"the log's table scrolls sideways by {wrap}px"
    screenshot(page, "phone-request-log-filters")
