"""The admin dashboard in a real browser (Debian's chromium) against a real gunicorn gateway.

Each test drives the page as a person would and checks the effect where it matters: on the
gateway, through the official openai SDK. Screenshots of every page land in a temporary directory,
or in docs/screenshots/ (the README's pictures) with ZENGATE_UPDATE_SCREENSHOTS=1 (tests/browser/conftest.py).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import openai
import pytest
import requests

from tests.browser.conftest import PHONE, login
from tests.support.fake_upstream import error, openai_tool_calls, responses_text
from tests.support.gateway import ADMIN_PASSWORD

sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
expect = sync_api.expect

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

HELLO = [{"role": "user", "content": "say hi"}]


def sdk(gw, key: str = "sk-zen-none"):
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0, timeout=30)


def logged(gw, **filters) -> list[dict]:
    return gw.admin("GET", "/_stats/requests", params={"bodies": 0, **filters}).json()["requests"]


def create_key_via_api(gw, name: str) -> str:
    r = gw.admin("POST", "/_admin/api-keys", json={"name": name})
    assert r.status_code == 201, r.text
    return r.json()["key"]


def nav(page, name: str) -> None:
    page.get_by_role("navigation", name="Sections").get_by_role("link", name=name, exact=True).click()


def stat(page, name: str) -> str:
    return page.locator(f'[data-stat="{name}"]').inner_text()


# --- signing in ----------------------------------------------------------------------------------------

def test_a_browser_at_the_root_gets_the_sign_in_page_and_a_wrong_password_is_refused(open_page, gw, screenshot):
    page, console = open_page()
    console.expect("status of 401")  # the browser notes the refused login itself; nothing else may appear
    page.goto(gw.url + "/")
    assert page.url == gw.url + "/_admin/ui"
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_label("Admin password", exact=True).fill("not-the-password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("Wrong password. Try again.")
    expect(page.get_by_label("Admin password", exact=True)).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#app")).to_be_hidden()
    assert page.context.cookies() == []
    screenshot(page, "login")
    # clients other than browsers still get the JSON at / (Claude Code probes HEAD /)
    assert requests.head(gw.url + "/", timeout=10).status_code == 200
    assert requests.get(gw.url + "/", timeout=10).json()["name"] == "zengate"


def test_the_session_is_an_httponly_cookie_and_logout_ends_it(page, gw):
    login(page, gw)
    (cookie,) = page.context.cookies()
    assert cookie["name"] == "zengate_admin" and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert page.evaluate("document.cookie") == ""  # scripts cannot read it
    assert page.evaluate("localStorage.length + sessionStorage.length") == 0
    headers = page.request.get(gw.url + "/_admin/ui").headers
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    page.get_by_role("button", name="Log out").first.click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.locator("#login-note")).to_have_text("You are logged out.")
    assert requests.get(gw.url + "/_admin/settings", cookies={"zengate_admin": cookie["value"]},
                        timeout=10).status_code == 401  # closed on the server, not just forgotten
    page.reload()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


# --- keys -------------------------------------------------------------------------------------------------

def test_a_key_created_in_the_dashboard_works_with_the_openai_sdk(page, gw, screenshot):
    login(page, gw)
    nav(page, "API keys")
    page.get_by_label("Name of the new key", exact=True).fill("laptop")
    page.get_by_role("button", name="Create key").click()
    secret = page.locator("#new-key-value")
    expect(secret).to_have_text(re.compile(r"^sk-zen-\S{40,}$"))
    key = secret.inner_text()
    page.get_by_role("button", name="Copy", exact=True).click()
    expect(page.locator("#new-key-copied")).to_have_text("Copied to the clipboard.")
    assert page.evaluate("navigator.clipboard.readText()") == key
    row = page.locator("#keys-table tbody tr", has_text="laptop")
    expect(row).to_contain_text(key[:13])
    expect(row).to_contain_text("active")
    expect(row).to_contain_text("never")
    screenshot(page, "keys")

    gw.set_setting("require_auth", True)
    answer = sdk(gw, key).chat.completions.create(model="big-pickle", messages=HELLO)
    assert answer.choices[0].message.content == "Hello from upstream"
    page.get_by_role("button", name="Done").click()
    expect(page.locator("#new-key")).to_be_hidden()  # the whole key leaves the screen
    gw.wait_for(lambda: any(k["last_used_at"] for k in gw.admin("GET", "/_admin/api-keys").json()["keys"]
                            if k["prefix"] == key[:13]))
    page.reload()
    expect(page.locator("#keys-table tbody tr", has_text="laptop")).to_contain_text("just now")


def test_revoking_a_key_after_confirming_makes_the_sdk_get_401(page, gw):
    key = create_key_via_api(gw, "to-revoke")
    gw.set_setting("require_auth", True)
    assert sdk(gw, key).chat.completions.create(model="big-pickle", messages=HELLO).choices
    login(page, gw)
    page.goto(gw.url + "/_admin/ui#keys")
    row = page.locator("#keys-table tbody tr", has_text="to-revoke")
    row.get_by_role("button", name=re.compile("^Revoke")).click()
    dialog = page.get_by_role("dialog", name="Revoke this key?")
    expect(dialog).to_contain_text(key[:13])
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    expect(row).to_contain_text("active")  # nothing happened
    assert sdk(gw, key).chat.completions.create(model="big-pickle", messages=HELLO).choices

    row.get_by_role("button", name=re.compile("^Revoke")).click()
    dialog.get_by_role("button", name="Revoke key").click()
    expect(page.locator("#keys-table tbody tr", has_text="to-revoke")).to_contain_text("revoked")
    with pytest.raises(openai.AuthenticationError) as refused:
        sdk(gw, key).chat.completions.create(model="big-pickle", messages=HELLO)
    assert refused.value.status_code == 401


def table_overflow(page, table: str) -> int:
    """How many pixels the table is wider than its scrolling wrapper (0: the whole row is in view)."""
    return page.evaluate("(s) => { const wrap = document.querySelector(s).parentElement;"
                         " return wrap.scrollWidth - wrap.clientWidth; }", table)


def key_record(gw, prefix: str) -> dict:
    """The key as GET /_admin/api-keys gives it (limits and usage)."""
    return next(k for k in gw.admin("GET", "/_admin/api-keys").json()["keys"] if k["prefix"] == prefix)


def test_a_keys_limits_are_edited_in_its_details_and_refusals_store_nothing(open_page, gw, screenshot):
    page, console = open_page()
    console.expect("status of 400")  # the browser notes the gateway's refusals of the bad rpm
    key = create_key_via_api(gw, "limited")
    login(page, gw)
    nav(page, "API keys")
    expect(page.locator("#keys-limits-note")).to_contain_text("Limits apply only while keys are required")
    row = page.locator("#keys-table tbody tr", has_text="limited")
    expect(row).to_contain_text("none")
    row.get_by_role("button", name=re.compile("^Details of limited")).click()
    panel = page.get_by_role("region", name=re.compile("^Details of limited"))
    expect(panel).to_be_focused()
    expect(panel.locator("#key-details-meta")).to_contain_text("last used never")
    rpm = panel.get_by_label("Requests per minute", exact=True)
    models = panel.get_by_label("Models", exact=True)
    expires = panel.get_by_label("Expires", exact=True)
    note = panel.get_by_label("Note", exact=True)
    save = panel.get_by_role("button", name="Save", exact=True)
    status = panel.locator("#key-edit-status")
    expect(rpm).to_have_value("")

    save.click()
    expect(status).to_have_text("Nothing has changed.")
    rpm.fill("5")
    models.fill("big-pickle, gpt-*")
    expires.fill("2031-01-31T23:30")  # the page's time zone is UTC
    note.fill("for the CI runner")
    save.click()
    expect(status).to_have_text("Saved 4 changes.")
    stored = key_record(gw, key[:13])
    assert stored["rpm"] == 5 and stored["models"] == ["big-pickle", "gpt-*"]
    assert stored["expires_at"] == "2031-01-31T23:30:00+00:00" and stored["note"] == "for the CI runner"
    assert stored["requests_per_day"] is None and stored["tokens_per_day"] is None and stored["name"] == "limited"
    expect(row).to_contain_text("5/min · 2 models · expires 2031-01-31")
    assert table_overflow(page, "#keys-table") <= 0  # the row's buttons are not pushed out of view
    expect(models).to_have_value("big-pickle, gpt-*")
    screenshot(page, "key-details-edit", full_page=True)

    # refused by the gateway: its message under the field, and nothing of the form stored
    for bad in ("0", "abc"):
        rpm.fill(bad)
        note.fill(f"changed with rpm {bad}")
        save.click()
        error_text = page.locator("#key-edit-rpm-error")
        expect(error_text).to_have_text(re.compile(r"^Must be a whole number of requests per minute from 1 to "))
        expect(rpm).to_have_attribute("aria-invalid", "true")
        expect(status).to_have_text("Nothing was saved: see the message under the field.")
        stored = key_record(gw, key[:13])
        assert stored["rpm"] == 5 and stored["note"] == "for the CI runner", stored
    panel.get_by_role("button", name="Discard").click()
    expect(rpm).to_have_value("5")
    expect(note).to_have_value("for the CI runner")
    expect(rpm).not_to_have_attribute("aria-invalid", "true")

    # empty fields clear the limits
    rpm.fill("")
    models.fill("")
    expires.fill("")
    panel.get_by_label("Tokens per day", exact=True).fill("200,000")
    save.click()
    expect(status).to_have_text("Saved 4 changes.")
    stored = key_record(gw, key[:13])
    assert stored["rpm"] is None and stored["models"] == [] and stored["expires_at"] is None
    assert stored["tokens_per_day"] == 200_000
    expect(row).to_contain_text("200K tok/day")
    panel.get_by_role("button", name="Close details").click()
    expect(panel).to_be_hidden()


def test_a_keys_details_show_its_usage_today_and_a_chart_of_30_days(open_page, gw, screenshot):
    key = create_key_via_api(gw, "metered")
    prefix = key[:13]
    assert gw.admin("PATCH", f"/_admin/api-keys/{key_record(gw, prefix)['id']}",
                    json={"rpm": 50, "models": ["big-pickle"]}).status_code == 200
    gw.set_setting("require_auth", True)  # keys are told apart, and counted, only while they are required
    client = sdk(gw, key)
    for _ in range(3):
        client.chat.completions.create(model="big-pickle", messages=HELLO)
    today = gw.wait_for(lambda: (lambda t: t if t["requests"] >= 3 else None)(
        key_record(gw, prefix)["usage"]["today"]))
    assert today and today["requests"] == 3, today

    page, _ = open_page()
    login(page, gw)
    nav(page, "API keys")
    expect(page.locator("#keys-table tbody tr").first).to_be_visible()
    expect(page.locator("#keys-limits-note")).to_be_hidden()  # keys are required: limits apply
    row = page.locator("#keys-table tbody tr", has_text="metered")
    expect(row).to_contain_text("50/min · 1 model")
    expect(row).to_contain_text("3 req · ")
    row.get_by_role("button", name=re.compile("^Details of metered")).click()
    panel = page.get_by_role("region", name=re.compile("^Details of metered"))
    usage = panel.locator("#key-usage-table")
    expect(usage.locator('[data-usage="requests"] td')).to_have_text(["3", "3"])  # today, this month
    expect(usage.locator('[data-usage="errors"] td')).to_have_text(["0", "0"])
    expect(usage.locator('[data-usage="tokens in"] td').first).to_have_text(f"{today['input_tokens']:,}")
    expect(usage.locator('[data-usage="tokens out"] td').first).to_have_text(f"{today['output_tokens']:,}")
    chart = panel.locator("#key-usage-chart svg[role=img]")
    expect(chart).to_have_attribute("data-bars", "30")
    expect(chart.locator("g.slot > title")).to_have_count(30)
    expect(chart).to_have_attribute("aria-label", re.compile(r": 3 requests and 0 errors from "))
    expect(chart.locator("g.slot").last.locator("title")).to_contain_text("3 requests, 0 errors")
    expect(chart.locator("g.slot").last.locator("rect.bar-ok")).to_have_count(1)
    expect(chart.locator("g.slot").first.locator("rect.bar-ok")).to_have_count(0)  # 29 days ago: none

    client.chat.completions.create(model="big-pickle", messages=HELLO)
    assert gw.wait_for(lambda: key_record(gw, prefix)["usage"]["today"]["requests"] >= 4)
    panel.get_by_role("button", name="Refresh usage").click()
    expect(usage.locator('[data-usage="requests"] td')).to_have_text(["4", "4"])
    expect(chart.locator("g.slot").last.locator("title")).to_contain_text("4 requests, 0 errors")
    screenshot(page, "key-details", full_page=True)

    phone, _ = open_page(viewport=PHONE, scale=2)
    login(phone, gw)
    nav(phone, "API keys")
    phone.locator("#keys-table tbody tr", has_text="metered").get_by_role(
        "button", name=re.compile("^Details of metered")).click()
    expect(phone.locator("#key-usage-chart svg[role=img]")).to_have_attribute("data-bars", "30")
    assert table_overflow(phone, "#keys-table") <= 0
    overflow = phone.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the key's details are wider than the phone by {overflow}px"
    screenshot(phone, "phone-key-details", full_page=True)


def test_the_keys_table_shows_each_keys_usage_today_and_this_month_with_its_errors(open_page, gw, upstream):
    key = create_key_via_api(gw, "busy key")
    prefix = key[:13]
    gw.set_setting("require_auth", True)  # keys are told apart, and counted, only while they are required
    client = sdk(gw, key)
    for _ in range(2):
        client.chat.completions.create(model="big-pickle", messages=HELLO)
    upstream.script("big-pickle", error(500, message="upstream fell over"))
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="big-pickle", messages=HELLO)
    usage = gw.wait_for(lambda: (lambda u: u if u["today"]["requests"] >= 3 else None)(key_record(gw, prefix)["usage"]))
    assert usage["today"]["errors"] == 1 and usage["month"] == usage["today"], usage
    tokens = usage["today"]["input_tokens"] + usage["today"]["output_tokens"]
    assert 0 < tokens < 1_000_000  # shown whole, not compacted

    page, _ = open_page()
    login(page, gw)
    nav(page, "API keys")
    row = page.locator("#keys-table tbody tr", has_text="busy key")
    for period, shown in (("today", "today"), ("this-month", "month")):
        line = row.locator(f'td.usage [data-period="{period}"]')
        expect(line).to_have_text(f"{shown} 3 req · {tokens:,} tok · 1 error")
        expect(line.locator(".usage-errors")).to_have_text("1 error")
    create_key_via_api(gw, "idle key")
    page.reload()
    idle = page.locator("#keys-table tbody tr", has_text="idle key")
    expect(idle.locator("td.usage .usage-line")).to_have_text(["today –", "month –"])
    assert table_overflow(page, "#keys-table") <= 0  # the column fits a laptop's width, actions in view

    phone, _ = open_page(viewport=PHONE, scale=2)
    login(phone, gw)
    nav(phone, "API keys")
    row = phone.locator("#keys-table tbody tr", has_text="busy key")
    expect(row.locator("td.usage")).to_be_hidden()
    expect(row).to_contain_text(f"today 3 req · {tokens:,} tok · 1 err")
    expect(row.get_by_role("button", name=re.compile("^Revoke"))).to_be_in_viewport(ratio=1)
    assert table_overflow(phone, "#keys-table") <= 0


# --- the request log and the overview ----------------------------------------------------------------------

def test_a_request_shows_in_the_log_with_its_messages_escaped(page, gw, upstream, screenshot):
    key = create_key_via_api(gw, "log-test")
    hostile = '<img src=x onerror="window.pwned=1"> and <b>bold</b> & "quotes"'
    upstream.script("gpt-5-nano", responses_text("A <script>alert(1)</script> reply"))  # its upstream API
    sdk(gw, key).chat.completions.create(model="gpt-5-nano", messages=[
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": hostile}])
    gw.wait_for(lambda: logged(gw, key=key[:13]))

    login(page, gw)
    nav(page, "Request log")
    page.get_by_label("Key prefix", exact=True).fill(key[:13])
    page.get_by_role("button", name="Apply").click()
    rows = page.locator("#requests-table tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("gpt-5-nano")
    expect(page.locator("#requests-range")).to_have_text("1–1 of 1")
    rows.first.get_by_role("button").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_role("heading", name=re.compile(r"^Request #\d+$"))).to_be_visible()
    expect(dialog.get_by_label("Input messages", exact=True)).to_contain_text(hostile)
    expect(dialog.get_by_label("Input messages", exact=True)).to_contain_text("Be brief.")
    expect(dialog.get_by_label("Output", exact=True)).to_contain_text("A <script>alert(1)</script> reply")
    expect(dialog).to_contain_text(key[:13])
    assert dialog.locator("img, b, script").count() == 0  # shown as text, never as markup
    assert page.evaluate("window.pwned") is None
    screenshot(page, "request-detail")
    dialog.get_by_role("button", name="Close").click()
    expect(dialog).to_be_hidden()

    page.get_by_role("button", name="Reset").click()
    expect(rows).not_to_have_count(1)
    screenshot(page, "request-log")


def test_a_request_a_guard_acted_on_shows_what_it_did(page, gw, upstream):
    key = create_key_via_api(gw, "guarded")
    gw.set_setting("guards", {"dangerous_commands": True})
    try:
        hostile = 'rm -rf ~ # <img src=x onerror="window.pwned=1">'
        upstream.script("big-pickle", openai_tool_calls([("shell", {"command": hostile})]))
        shell = {"type": "function", "function": {"name": "shell", "parameters": {
            "type": "object", "properties": {"command": {"type": "string"}}}}}
        answer = sdk(gw, key).chat.completions.create(model="big-pickle", tools=[shell],
                                                      messages=[{"role": "user", "content": "free some space"}])
        assert "rm-home" in answer.choices[0].message.content
        gw.wait_for(lambda: logged(gw, key=key[:13]))
    finally:
        gw.set_setting("guards", {})

    login(page, gw)
    nav(page, "Request log")
    page.get_by_label("Key prefix", exact=True).fill(key[:13])
    page.get_by_role("button", name="Apply").click()
    page.locator("#requests-table tbody tr").first.get_by_role("button").click()
    dialog = page.get_by_role("dialog")
    section = dialog.locator("section", has=page.get_by_role("heading", name="Agent guards"))
    expect(section.locator("tbody tr")).to_have_count(1)
    expect(section).to_contain_text("dangerous_commands")
    expect(section).to_contain_text("refused")
    expect(section).to_contain_text(f"shell: rm-home: {hostile}")  # shown as text, never as markup
    assert dialog.locator("img").count() == 0 and page.evaluate("window.pwned") is None


def test_a_trimmed_request_shows_its_tokens_before_and_after_and_the_overview_the_total(page, gw, upstream):
    from tests.support.fake_upstream import anthropic_text
    from tests.unit.test_trim import session

    key = create_key_via_api(gw, "trimmed")
    gw.set_setting("trimming", {"thinking": True, "tool_results": True, "repeats": True, "reminders": True})
    try:
        upstream.script("minimax-m2.5-free", anthropic_text("done"))
        r = requests.post(gw.url + "/v1/messages", json={**session(16)[-1], "model": "minimax-m2.5-free"},
                          headers={"x-api-key": key, "anthropic-version": "2023-06-01"}, timeout=30)
        assert r.status_code == 200 and r.json()["content"][0]["text"] == "done"
        [row] = gw.wait_for(lambda: logged(gw, key=key[:13]))
    finally:
        gw.set_setting("trimming", {})
    before, after = row["trim_tokens_before"], row["trim_tokens_after"]
    assert before > after > 0

    login(page, gw)
    expect(page.locator('[data-stat="trimmed"]')).not_to_have_text("–")
    total = gw.admin("GET", "/_stats").json()["tokens_saved"]
    assert total >= before - after
    assert int(page.locator('[data-stat="trimmed"]').get_attribute("title").replace(",", "")) == total
    nav(page, "Request log")
    page.get_by_label("Key prefix", exact=True).fill(key[:13])
    page.get_by_role("button", name="Apply").click()
    page.locator("#requests-table tbody tr").first.get_by_role("button").click()
    dialog = page.get_by_role("dialog")
    item = dialog.locator("dl.meta > div").filter(has=page.locator("dt", has_text=re.compile(r"^Trimmed$")))
    expect(item.locator("dd")).to_have_text(f"{before:,} → {after:,} tokens (estimated)")


def test_the_overview_refreshes_itself_when_requests_arrive(open_page, gw, screenshot):
    page, _ = open_page()
    login(page, gw)
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    expect(page.locator('[data-stat="requests"]')).not_to_have_text("–")
    before = int(stat(page, "requests").replace(",", ""))
    tokens_before = stat(page, "tokens-out")
    client = sdk(gw)
    for model in ("big-pickle", "big-pickle", "gpt-5-nano"):
        client.chat.completions.create(model=model, messages=HELLO)
    expected = before + 3
    gw.wait_for(lambda: gw.admin("GET", "/_stats").json()["total_requests"] >= expected)
    # no click: the page refreshes itself
    expect(page.locator('[data-stat="requests"]')).to_have_text(f"{expected:,}", timeout=20_000)
    assert stat(page, "tokens-out") != tokens_before
    for name in ("errors", "avg", "p95", "tokens-in", "uptime"):
        assert stat(page, name) not in ("", "–"), name
    for chart in ("chart-requests", "chart-latency", "chart-models-requests", "chart-models-latency"):
        expect(page.locator(f"#{chart} svg[role=img]")).to_have_count(1)
    expect(page.locator("#chart-models-requests")).to_contain_text("gpt-5-nano")
    expect(page.locator("#recent-table tbody tr").first).to_contain_text("gpt-5-nano")
    page.get_by_label("Window", exact=True).select_option("15")
    expect(page.locator('[data-sub="requests"]')).to_contain_text("in the last 15 min")
    page.get_by_label("Window", exact=True).select_option("60")
    expect(page.locator('[data-sub="requests"]')).to_contain_text("in the last hour")
    screenshot(page, "overview")

    dark, _ = open_page(color_scheme="dark")
    login(dark, gw)
    expect(dark.locator("#chart-requests svg")).to_have_count(1)
    screenshot(dark, "overview-dark")


# --- settings ------------------------------------------------------------------------------------------------

def test_settings_are_validated_and_require_auth_stops_keyless_calls(open_page, gw, screenshot):
    page, console = open_page()
    console.expect("status of 400")  # the browser notes the gateway's refusal of the empty header
    login(page, gw)
    nav(page, "Settings")
    save = page.get_by_role("button", name="Save changes")
    expect(save).to_be_disabled()

    # checked in the page before anything is sent
    body_limit = page.locator("#setting-max_body_bytes")
    body_limit.fill("5")
    save.click()
    expect(page.locator("#setting-max_body_bytes-error")).to_have_text("Must be at least 1024.")
    expect(body_limit).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#settings-status")).to_contain_text("Nothing was saved")
    body_limit.fill("1.5")
    save.click()
    expect(page.locator("#setting-max_body_bytes-error")).to_have_text("Must be a whole number.")
    page.locator("#setting-model_protocols").fill("{not json")
    save.click()
    expect(page.locator("#setting-model_protocols-error")).to_contain_text("Not valid JSON")
    page.get_by_role("button", name="Discard").click()
    expect(save).to_be_disabled()
    # checked by the gateway, its message shown under the field
    page.get_by_label("Project header", exact=True).fill("")
    save.click()
    expect(page.locator("#setting-opencode_project-error")).to_have_text("Must not be empty")
    page.get_by_role("button", name="Discard").click()
    assert gw.admin("GET", "/_admin/settings").json()["settings"]["max_body_bytes"] == 20_000_000

    # the friendly model map editor
    haiku = page.get_by_label("Haiku →", exact=True)
    expect(haiku).to_have_value("gpt-5-nano")
    expect(page.get_by_label("Gemini →", exact=True)).to_have_value("big-pickle")  # Gemini CLI's names
    haiku.fill("glm-4.7-free")
    page.get_by_role("switch", name="Require API keys").check()
    expect(page.locator("#settings-status")).to_have_text("2 unsaved changes")
    screenshot(page, "settings")
    save.click()
    expect(page.locator("#settings-status")).to_have_text("Saved 2 settings.")
    settings = gw.admin("GET", "/_admin/settings").json()["settings"]
    assert settings["require_auth"] is True and settings["model_map"]["haiku"] == "glm-4.7-free"

    keyless = requests.post(gw.url + "/v1/chat/completions", json={"model": "big-pickle", "messages": HELLO},
                            timeout=30)
    assert keyless.status_code == 401
    with pytest.raises(openai.AuthenticationError) as refused:
        sdk(gw, key="sk-zen-not-a-real-key").chat.completions.create(model="big-pickle", messages=HELLO)
    assert refused.value.status_code == 401
    key = create_key_via_api(gw, "after-auth")
    assert sdk(gw, key).chat.completions.create(model="big-pickle", messages=HELLO).choices

    page.get_by_role("switch", name="Require API keys").uncheck()
    page.locator('[data-setting="model_map"]').get_by_role("button", name="Use the default").click()
    save.click()
    expect(page.locator("#settings-status")).to_have_text("Saved 2 settings.")
    settings = gw.admin("GET", "/_admin/settings").json()["settings"]
    assert settings["require_auth"] is False and settings["model_map"]["haiku"] == "gpt-5-nano"

    # the agent guards: a switch each, and per-model switches as JSON
    page.get_by_role("switch", name="Refuse dangerous shell commands").check()
    page.locator("#setting-guards-scoped").fill('{"models": {"big-pickle": {"tool_repair": true}}}')
    save.click()
    expect(page.locator("#settings-status")).to_have_text("Saved 1 setting.")
    assert gw.admin("GET", "/_admin/settings").json()["settings"]["guards"] == {
        "dangerous_commands": True, "models": {"big-pickle": {"tool_repair": True}}}
    page.locator("#setting-guards-scoped").fill('{"model": {}}')
    save.click()
    expect(page.locator("#setting-guards-error")).to_contain_text('Only "models" and "keys" go here')
    page.get_by_role("button", name="Discard").click()
    assert requests.post(gw.url + "/v1/chat/completions", json={"model": "big-pickle", "messages": HELLO},
                         timeout=30).status_code == 200

    # steering: its own section; in-chat commands switched on here answer !/help in the chat
    steering = page.locator("section", has=page.get_by_role("heading", name="Steering"))
    steering.get_by_role("switch", name="In-chat commands (!/model…)").check()
    save.click()
    expect(page.locator("#settings-status")).to_have_text("Saved 1 setting.")
    helped = requests.post(gw.url + "/v1/chat/completions", json={"model": "big-pickle", "messages": [
        {"role": "user", "content": "!/help"}]}, timeout=30).json()
    assert helped["choices"][0]["message"]["content"].startswith("[zengate] In-chat commands")
    steering.get_by_role("switch", name="In-chat commands (!/model…)").uncheck()
    save.click()
    expect(page.locator("#settings-status")).to_have_text("Saved 1 setting.")
    assert gw.admin("GET", "/_admin/settings").json()["settings"]["chat_commands"] is False


# --- the proxy pool -------------------------------------------------------------------------------------------

def test_the_proxy_mode_switch_and_pool(page, gw, screenshot):
    if gw.admin("GET", "/_admin/proxy").status_code == 404:
        pytest.skip("this gateway has no proxy API (GET /_admin/proxy): the panel stays hidden")
    login(page, gw)
    nav(page, "Proxy pool")
    mode = page.get_by_role("group", name="Send upstream calls through proxies")
    expect(mode.get_by_label("Off", exact=True)).to_be_checked()
    expect(page.locator("#proxy-state")).to_contain_text("upstream calls go direct")

    mode.get_by_text("Auto").click()
    expect(page.locator(".toast").last).to_have_text("Proxy mode: Auto.")
    assert gw.admin("GET", "/_admin/proxy").json()["mode"] == "auto"
    mode.get_by_text("On", exact=True).click()
    expect(page.locator("#proxy-state")).to_contain_text("upstream calls go through proxies")
    assert gw.admin("GET", "/_admin/proxy").json()["mode"] == "on"

    page.get_by_role("button", name="Refresh the pool now").click()
    expect(page.locator('[data-proxy="total"]')).to_have_text("3")
    expect(page.locator("#proxy-table tbody tr")).to_have_count(3)
    expect(page.locator('[data-proxy="last_refresh"]')).to_have_text("just now")

    uptime = page.get_by_label("Lowest uptime (%)", exact=True)
    uptime.fill("101")
    page.get_by_role("button", name="Save proxy settings").click()
    expect(page.locator("#setting-proxy_min_uptime-error")).to_have_text("Must be at most 100.")
    uptime.fill("95")
    page.get_by_label("Countries", exact=True).fill("DE,NL")
    page.get_by_role("button", name="Save proxy settings").click()
    expect(page.locator("#proxy-settings-status")).to_have_text("Saved 2 proxy settings.")
    assert gw.admin("GET", "/_admin/proxy").json()["settings"]["min_uptime"] == 95
    screenshot(page, "proxy")

    page.get_by_label("Countries", exact=True).fill("")
    uptime.fill("80")
    page.get_by_role("button", name="Save proxy settings").click()
    expect(page.locator("#proxy-settings-status")).to_have_text("Saved 2 proxy settings.")
    mode.get_by_text("Off").click()
    expect(page.locator("#proxy-state")).to_contain_text("upstream calls go direct")
    assert gw.admin("GET", "/_admin/proxy").json()["mode"] == "off"


# --- a phone --------------------------------------------------------------------------------------------------

def test_every_page_fits_a_phone(open_page, gw, screenshot):
    create_key_via_api(gw, "a phone's key with a long name")
    page, _ = open_page(viewport=PHONE, scale=2)
    login(page, gw)
    views = ["overview", "requests", "models", "keys", "settings", "account"]
    if page.locator("#nav-proxy").is_visible():
        views.append("proxy")
    for view in views:
        page.goto(f"{gw.url}/_admin/ui#{view}")  # as a link or a bookmark would: the tab may start out of sight
        expect(page.locator(f"#view-{view}")).to_be_visible()
        expect(page.locator(f"#view-{view} h1")).to_be_in_viewport()
        expect(page.locator(f'[data-nav="{view}"]')).to_be_in_viewport(ratio=0.9)  # the current tab is shown
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{view} is wider than the phone by {overflow}px"
        nav_bottom = page.locator(".sidebar").bounding_box()
        heading = page.locator(f"#view-{view} h1").bounding_box()
        gap = heading["y"] - (nav_bottom["y"] + nav_bottom["height"])
        assert gap < 40, f"{view}: {gap:.0f}px of empty space between the navigation and the content"
        if view == "keys":  # the table's actions in sight, nothing to scroll sideways
            expect(page.locator("#keys-table tbody tr").first.get_by_role("button", name=re.compile("^Revoke"))
                   ).to_be_in_viewport(ratio=1)
            assert page.evaluate("(() => { const w = document.querySelector('#keys-table').closest('.table-wrap');"
                                 " return w.scrollWidth - w.clientWidth; })()") <= 0
        if view == "overview":
            expect(page.locator("#chart-requests svg")).to_have_count(1)
            screenshot(page, "phone-overview")
        if view == "requests":
            expect(page.locator("#requests-table tbody tr").first).to_be_visible()
            screenshot(page, "phone-request-log")


# --- filters and clearing the log --------------------------------------------------------------------------------

def test_request_log_filters_and_clearing_it(page, gw, upstream):
    upstream.script("glm-4.7-free", error(500, message="upstream fell over"))
    with pytest.raises(openai.InternalServerError):
        sdk(gw).chat.completions.create(model="glm-4.7-free", messages=HELLO)
    gw.wait_for(lambda: logged(gw, status="500", model="glm-4.7-free"))

    login(page, gw)
    page.goto(gw.url + "/_admin/ui#requests")
    rows = page.locator("#requests-table tbody tr")
    page.get_by_label("Model asked for", exact=True).fill("glm-4.7-free")
    page.get_by_label("Status", exact=True).select_option("5xx")
    page.get_by_role("button", name="Apply").click()
    expect(rows).to_have_count(len(logged(gw, model="glm-4.7-free", status="5xx")))
    expect(rows.first).to_contain_text("500")
    texts = rows.all_inner_texts()
    assert all(t.split("\t")[1] == "glm-4.7-free" and t.split("\t")[2].startswith("5") for t in texts), texts
    page.get_by_label("Status", exact=True).select_option("ok")
    page.get_by_label("From", exact=True).fill("2030-01-01T00:00:00")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("#requests-empty")).to_have_text("No requests match these filters.")
    page.get_by_label("To", exact=True).fill("2029-01-01T00:00:00")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("#filters-error")).to_have_text("“To” must be after “From”.")
    page.get_by_role("button", name="Reset").click()
    expect(rows.first).to_be_visible()

    page.get_by_role("button", name="Clear log…").click()
    dialog = page.get_by_role("dialog", name="Clear the request log?")
    dialog.get_by_role("button", name="Cancel").click()
    expect(rows.first).to_be_visible()
    assert gw.admin("GET", "/_stats").json()["total_requests"] > 0
    page.get_by_role("button", name="Clear log…").click()
    dialog.get_by_role("button", name="Clear the log").click()
    expect(page.locator(".toast").last).to_contain_text("Cleared")
    expect(page.locator("#requests-empty")).to_have_text("The log is empty.")
    assert gw.admin("GET", "/_stats").json()["total_requests"] == 0


# --- the password (last: it ends every other admin session) ------------------------------------------------------

def test_changing_the_password(open_page, gw, screenshot):
    page, console = open_page()
    console.expect("status of 403")  # the browser notes the gateway's refusal of the wrong current password
    login(page, gw)
    nav(page, "Account")
    form = page.locator("#password-form")
    form.get_by_label("Current password", exact=True).fill("wrong-current")
    form.get_by_label("New password", exact=True).fill("short")
    form.get_by_label("New password again", exact=True).fill("short")
    form.get_by_role("button", name="Change password").click()
    expect(page.locator("#password-error")).to_have_text("The new password needs at least 8 characters.")
    form.get_by_label("New password", exact=True).fill("a-much-better-password")
    form.get_by_label("New password again", exact=True).fill("a-much-better-passwort")
    form.get_by_role("button", name="Change password").click()
    expect(page.locator("#password-error")).to_have_text("The two new passwords differ.")
    form.get_by_label("New password again", exact=True).fill("a-much-better-password")
    form.get_by_role("button", name="Change password").click()
    expect(page.locator("#password-error")).to_have_text("The current password is wrong.")
    screenshot(page, "account")
    form.get_by_label("Current password", exact=True).fill(ADMIN_PASSWORD)
    form.get_by_role("button", name="Change password").click()
    expect(page.locator(".toast").last).to_contain_text("Password changed")
    expect(form.get_by_label("Current password", exact=True)).to_have_value("")

    page.reload()  # the renewed cookie keeps this browser signed in
    expect(page.get_by_role("heading", name="Account")).to_be_visible()
    gw._token = None  # the helper's old bearer session was ended too
    assert requests.post(gw.url + "/_admin/login", json={"password": ADMIN_PASSWORD}, timeout=10).status_code == 401
    page.get_by_role("button", name="Log out").last.click()
    login(page, gw, "a-much-better-password")
    page.goto(gw.url + "/_admin/ui#account")
    form.get_by_label("Current password", exact=True).fill("a-much-better-password")
    form.get_by_label("New password", exact=True).fill(ADMIN_PASSWORD)
    form.get_by_label("New password again", exact=True).fill(ADMIN_PASSWORD)
    form.get_by_role("button", name="Change password").click()
    expect(page.locator(".toast").last).to_contain_text("Password changed")


def test_an_unreachable_redis_is_shown_on_the_dashboard(browser, upstream, tmp_path):
    """A gateway whose ``REDIS_URL`` answers nothing: the dashboard says so, and what it means."""
    from tests.support.gateway import GatewayProcess, free_port

    lonely = GatewayProcess(tmp_path, upstream.url, workers=1,
                            env={"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}).start()
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    try:
        health = lonely.wait_for(lambda: (lambda body: body if "Connection" in body["shared_state"].get(
            "error", "") else None)(requests.get(lonely.url + "/healthz", timeout=10).json()))  # its first try failed
        assert health["status"] == "ok" and health["shared_state"]["redis"] == "unavailable"
        page = context.new_page()
        page.set_default_timeout(15_000)
        login(page, lonely)
        banner = page.locator("#redis-down-banner")
        expect(banner).to_be_visible()
        expect(banner).to_contain_text("serves on its own view")
        expect(banner).to_contain_text("Connection")
    finally:
        context.close()
        lonely.stop()


# --- wire capture ---------------------------------------------------------------------------------------------

def test_wire_capture_is_switched_on_downloaded_and_deleted_in_the_request_log(page, gw, upstream):
    login(page, gw)
    page.goto(gw.url + "/_admin/ui#requests")
    card = page.locator("#capture-card")
    switch = card.get_by_role("switch", name="Capture exchanges")
    expect(switch).not_to_be_checked()
    switch.check()
    expect(page.get_by_text("Wire capture is on")).to_be_visible()
    nav(page, "Overview")  # a toast does not follow the user to the next page
    expect(page.locator("#toasts .toast")).to_have_count(0, timeout=1000)  # (it would last 3.5 s)
    nav(page, "Request log")
    assert gw.admin("GET", "/_admin/settings").json()["settings"]["wire_capture"] is True
    try:
        key = create_key_via_api(gw, "captured")
        asked = "capture this exchange please"
        assert sdk(gw, key).chat.completions.create(model="big-pickle", messages=[
            {"role": "user", "content": asked}]).choices
        gw.wait_for(lambda: gw.admin("GET", "/_admin/capture").json()["files"])
        nav(page, "Overview")
        nav(page, "Request log")  # the list is read as the page opens
        link = card.locator("#capture-table tbody a").first
        expect(link).to_be_visible()
        with page.expect_download() as download:
            link.click()
        text = Path(download.value.path()).read_text()
        lines = [json.loads(line) for line in text.splitlines()]
        assert any(asked in json.dumps(line) for line in lines)
        assert key not in text  # the client's key masked
        card.get_by_role("button", name="Delete all files…").click()
        page.get_by_role("dialog").get_by_role("button", name="Delete all").click()
        expect(card.locator("#capture-empty")).to_be_visible()
        assert gw.admin("GET", "/_admin/capture").json()["files"] == []
    finally:
        switch.uncheck()
        expect(page.get_by_text("Wire capture is off.")).to_be_visible()
