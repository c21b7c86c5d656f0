"""The dashboard's Models page in a real browser against a real gunicorn gateway with a models file.

Traffic is sent with the official openai SDK and counted on the page; the Test button sends its
request through the gateway to the fake upstream, whose answer (or error) the page shows.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import openai
import pytest

from tests.browser.conftest import PHONE, login
from tests.browser.test_dashboard_browser import logged, nav, sdk
from tests.support.fake_upstream import error, hang, openai_text
from tests.support.gateway import GatewayProcess

sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
expect = sync_api.expect

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

HELLO = [{"role": "user", "content": "say hi"}]
HOSTILE = "<img src=x onerror=alert(1)>"  # a model name from the models file, shown as text
COLUMNS = {"model": 0, "tier": 1, "limits": 2, "live": 3, "traffic": 4}
LATENCY = re.compile(r" in (\d+ ms|[\d.]+ s)")


@pytest.fixture(scope="module")
def gateway(tmp_path_factory, upstream) -> Iterator[GatewayProcess]:
    """This module's own gateway: a backend and an alias in its models file, no seeded history."""
    workdir = tmp_path_factory.mktemp("models")
    models = workdir / "models.yaml"
    models.write_text(
        "backends:\n"
        f"  local: {{base_url: '{upstream.url}/local', protocol: openai}}\n"
        "models:\n"
        "  house-model: {backend: local, context: 32000, max_output: 4000, fallbacks: [big-pickle]}\n"
        f"  '{HOSTILE}': {{backend: local}}\n"
        "aliases:\n"
        "  fast: gpt-5-nano\n")
    gw = GatewayProcess(workdir, upstream.url, env={"ZENGATE_SETTINGS_TTL": "0", "ZENGATE_MODELS_FILE": str(models)})
    gw.start()
    yield gw
    gw.stop()


def row(page, model: str):
    return page.locator(f'#models-table tbody tr[data-model="{model}"]')


def cell(page, model: str, column: str):
    return row(page, model).locator("td").nth(COLUMNS[column])


def protocol(page, model: str):
    return cell(page, model, "tier").locator(".protocol")


def routing(page, model: str):
    return cell(page, model, "model").locator(".routing")


def requests_(page, model: str):
    return cell(page, model, "traffic").locator(".requests")


def errors(page, model: str):
    return cell(page, model, "traffic").locator(".errors")


def result(page, model: str):
    return page.locator(f'#models-table tbody tr[data-test-for="{model}"]')


def old_request(gw, model: str, hours: int) -> None:
    """A request ``hours`` ago, written into the log as the gateway writes them (outside a short window)."""
    when = (datetime.now(UTC) - timedelta(hours=hours)).replace(tzinfo=None).isoformat(sep=" ")
    with sqlite3.connect(gw.workdir / "data" / "zengate.db", timeout=10) as conn:
        conn.execute("INSERT INTO request_log (created_at, request_id, method, path, model, upstream_model, format,"
                     " stream, status, latency_ms, input_tokens, output_tokens)"
                     " VALUES (?, 'msg_old', 'POST', '/v1/chat/completions', ?, ?, 'openai', 0, 200, 800, 10, 5)",
                     (when, model, model))


def test_the_models_page_lists_what_is_served_counts_traffic_and_tests_a_model(page, gw, upstream, screenshot):
    client = sdk(gw)
    for _ in range(3):
        assert client.chat.completions.create(model="big-pickle", messages=HELLO).choices
    assert client.chat.completions.create(model="fast", messages=HELLO).choices  # the alias: gpt-5-nano answers
    upstream.script("glm-4.7-free", error(500, "upstream fell over", type="api_error"))
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="glm-4.7-free", messages=HELLO)
    old_request(gw, "big-pickle", hours=3)
    assert gw.wait_for(lambda: len(logged(gw)) == 6)  # every worker's rows are in the log

    login(page, gw)
    nav(page, "Models")
    expect(page.get_by_role("heading", name="Models", exact=True)).to_be_visible()
    # what the fake upstream lists, on its tier, with its protocol, live now; and the traffic of the last 24 hours
    expect(cell(page, "big-pickle", "tier").locator(".tier")).to_have_text("Zen · free")
    expect(protocol(page, "big-pickle")).to_have_text("openai")
    expect(cell(page, "big-pickle", "live")).to_have_text("live")
    expect(cell(page, "big-pickle", "limits")).to_have_text("200K / 32K")
    expect(requests_(page, "big-pickle")).to_have_text("4")
    expect(errors(page, "big-pickle")).to_have_text("0 errors")
    expect(cell(page, "big-pickle", "traffic").locator(".median")).to_have_text(re.compile(r"^· \d+ ms$"))
    expect(routing(page, "big-pickle")).to_contain_text("for opus, sonnet, gemini, other Claude names")
    expect(protocol(page, "gpt-5-nano")).to_have_text("responses")
    expect(routing(page, "gpt-5-nano")).to_contain_text("alias fast")
    expect(requests_(page, "gpt-5-nano")).to_have_text("1")  # asked for as "fast"
    expect(requests_(page, "glm-4.7-free")).to_have_text("1")
    expect(errors(page, "glm-4.7-free")).to_have_text("1 error")
    expect(protocol(page, "claude-sonnet-4-5")).to_have_text("anthropic")
    expect(requests_(page, "claude-sonnet-4-5")).to_have_text("0")
    expect(cell(page, "glm-5", "tier").locator(".tier")).to_have_text("Go")
    expect(cell(page, "glm-5", "live")).to_have_text("not listed")  # the Go tier's list does not name it
    expect(routing(page, "glm-5")).to_contain_text("no key for its tier")
    expect(cell(page, "house-model", "tier").locator(".tier")).to_have_text("backend local")
    expect(cell(page, "house-model", "live")).to_have_text("unknown")
    expect(cell(page, "house-model", "limits")).to_have_text("32K / 4K")
    expect(routing(page, "house-model")).to_contain_text("then big-pickle")
    expect(cell(page, HOSTILE, "model").locator(".model-id")).to_have_text(HOSTILE)
    assert page.locator("#models-table img").count() == 0
    families = page.locator("#families-table tbody")
    expect(families.locator("tr", has_text="Claude Sonnet")).to_contain_text("big-pickle")
    expect(families.locator("tr", has_text="Claude Haiku")).to_contain_text("gpt-5-nano")
    expect(page.locator("#aliases-table tbody tr")).to_have_text(["fastgpt-5-nano"])
    expect(page.locator("#models-live")).to_contain_text("Zen fetched, Go fetched")

    page.locator("#models-window").select_option("60")  # the request of three hours ago leaves the window
    expect(requests_(page, "big-pickle")).to_have_text("3")

    # a test from the page: busy while the upstream thinks, then its answer (as text), who gave it and the latency
    upstream.script("big-pickle", hang(1.0, then=openai_text("OK <b>from</b> the pickle")))
    button = row(page, "big-pickle").get_by_role("button", name="Test big-pickle")
    button.click()
    expect(button).to_be_disabled()
    expect(button).to_have_text("Testing…")
    shown = result(page, "big-pickle")
    expect(shown.locator("pre")).to_have_text("OK <b>from</b> the pickle")
    expect(shown).to_contain_text("Answered by big-pickle on zen")
    expect(shown).to_contain_text(LATENCY)
    assert shown.locator("b").count() == 0
    expect(button).to_be_enabled()
    expect(button).to_have_text("Test")
    sent = upstream.received("/chat/completions", model="big-pickle")
    assert [r.body["messages"][0]["content"] for r in sent] == ["say hi"] * 3 + ["Reply with OK"]
    assert gw.wait_for(lambda: [r["path"] for r in logged(gw, model="big-pickle")].count("/_admin/models/test") == 1)
    page.get_by_role("button", name="Refresh", exact=True).click()
    expect(requests_(page, "big-pickle")).to_have_text("4")  # the test is logged like any request
    expect(result(page, "big-pickle")).to_contain_text("Answered by big-pickle")  # kept across the reload
    assert page.evaluate("(() => { const w = document.querySelector('#models-table').closest('.table-wrap');"
                         " return w.scrollWidth - w.clientWidth; })()") <= 0, "the table scrolls sideways"
    screenshot(page, "models")

    # the count leads to those requests in the log: what big-pickle answered in the last hour
    requests_(page, "big-pickle").click()
    expect(page.locator("#view-requests")).to_be_visible()
    expect(page.locator("#filter-upstream_model")).to_have_value("big-pickle")
    log_rows = page.locator("#requests-table tbody tr")
    expect(log_rows).to_have_count(4)
    assert all(t.split("\t")[1] == "big-pickle" for t in log_rows.all_inner_texts())
    nav(page, "Models")

    # a model on the models file's backend, by a name that is markup
    row(page, HOSTILE).get_by_role("button", name=f"Test {HOSTILE}").click()
    expect(result(page, HOSTILE)).to_contain_text(f"Answered by {HOSTILE} on local")
    expect(result(page, HOSTILE).locator("pre")).to_have_text("Hello from upstream")
    assert page.locator("#models-table img").count() == 0


def test_an_upstream_error_is_shown_with_its_status_and_message(page, gw, upstream):
    upstream.script("mimo-v2-pro-free", error(503, "upstream overloaded, try later", type="api_error"))
    login(page, gw)
    page.goto(gw.url + "/_admin/ui#models")
    row(page, "mimo-v2-pro-free").get_by_role("button", name="Test mimo-v2-pro-free").click()
    shown = result(page, "mimo-v2-pro-free")
    expect(shown.locator(".badge")).to_have_text("503")
    expect(shown.locator("pre")).to_contain_text("upstream overloaded, try later")
    expect(shown).to_contain_text(re.compile(r"Failed" + LATENCY.pattern))
    expect(page.locator("#toasts")).to_be_empty()  # the test ran; its outcome is the row's, not an alarm


def test_on_a_phone_the_test_button_is_in_sight_and_nothing_scrolls_sideways(open_page, gw, upstream, screenshot):
    page, _ = open_page(viewport=PHONE, scale=2)
    login(page, gw)
    page.goto(gw.url + "/_admin/ui#models")
    first = page.locator("#models-table tbody tr").first
    expect(first).to_have_attribute("data-model", "big-pickle")
    screenshot(page, "phone-models")
    expect(first.get_by_role("button", name="Test big-pickle")).to_be_in_viewport(ratio=1)
    for column in ("model", "traffic"):
        expect(cell(page, "big-pickle", column)).to_be_in_viewport(ratio=1)
    for column in ("tier", "limits", "live"):  # left out on a phone; said under the model's name
        expect(cell(page, "big-pickle", column)).to_be_hidden()
    expect(cell(page, "big-pickle", "model").locator(".model-tier")).to_have_text("Zen · free · openai")
    expect(cell(page, "big-pickle", "model").locator(".model-live")).to_have_text("live")
    width = page.evaluate("document.querySelector('#models-table td.model-cell').getBoundingClientRect().width")
    assert width >= 150, f"the model's column is {width:.0f} px wide on a phone: its name and routing wrap word by word"

    def sideways() -> tuple[int, int]:
        return page.evaluate("[document.documentElement.scrollWidth - window.innerWidth, (() => {"
                             " const w = document.querySelector('#models-table').closest('.table-wrap');"
                             " return w.scrollWidth - w.clientWidth; })()]")

    assert max(sideways()) <= 0, "the table is wider than the phone"
    upstream.script("big-pickle", openai_text("OK" + "-and-on" * 60 + "x" * 200))  # a long answer wraps
    first.get_by_role("button", name="Test big-pickle").click()
    expect(result(page, "big-pickle")).to_contain_text("Answered by big-pickle")
    assert max(sideways()) <= 0, "the answer made the table wider than the phone"
    expect(first.get_by_role("button", name="Test big-pickle")).to_be_in_viewport(ratio=1)
