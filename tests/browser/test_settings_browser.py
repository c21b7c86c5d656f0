"""The settings page in a real browser: folding sections and the filter box, the form editors of
fallbacks, model overrides and auto routes (raw JSON a click away), and when a saved change applies.

Each change made through a form is checked where it matters: the value the gateway stored is the
one the form built, and a request through the openai SDK is routed by it.
"""

from __future__ import annotations

import json

import pytest

from tests.browser.conftest import PHONE, login
from tests.browser.test_dashboard_browser import HELLO, nav, sdk
from tests.support.fake_upstream import error

sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
expect = sync_api.expect

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

#: The browser tests' gateway caches settings for 0 s (tests/browser/conftest.py) and has no Redis.
APPLIES = ("at the next request on every worker of this instance; other instances sharing its database: "
           "at their next request (ZENGATE_SETTINGS_TTL)")


@pytest.fixture
def clean(gw):
    """The routing settings back at their defaults after the test, whatever it left."""
    yield gw
    for name in ("fallbacks", "model_overrides", "auto_routes"):
        gw.set_setting(name, {})


def settings_page(open_page, gw, **kwargs):
    page, console = open_page(**kwargs)
    login(page, gw)
    nav(page, "Settings")
    expect(page.locator('[data-setting="fallbacks"]')).to_have_count(1)
    return page, console


def stored(gw, name: str):
    return gw.admin("GET", "/_admin/settings").json()["settings"][name]


def shown_settings(page) -> list[str]:
    """The names of the settings a person sees now."""
    return page.locator("#settings-sections .setting:visible").evaluate_all("rows => rows.map(r => r.dataset.setting)")


def section(page, title: str):
    return page.locator(f'#settings-sections section[aria-label="{title}"]')


def editor(page, name: str):
    return page.locator(f'[data-setting="{name}"]')


# --- sections and the filter ---------------------------------------------------------------------------

def test_sections_fold_and_the_filter_shows_only_matching_settings(open_page, gw):
    page, _ = settings_page(open_page, gw)
    routing = section(page, "Model routing")
    summary = routing.locator("summary")
    expect(summary).to_contain_text("Model routing")
    expect(page.get_by_role("heading", name="Model routing")).to_be_visible()
    expect(editor(page, "fallbacks")).to_be_visible()

    # by mouse and by keyboard
    summary.click()
    expect(editor(page, "fallbacks")).to_be_hidden()
    summary.focus()
    page.keyboard.press("Enter")
    expect(editor(page, "fallbacks")).to_be_visible()
    page.get_by_role("button", name="Collapse all").click()
    assert shown_settings(page) == []

    # the filter opens the sections that hold a match and hides the others
    listed = gw.admin("GET", "/_admin/settings").json()["describe"]
    proxy_panel = page.locator("#nav-proxy").is_visible()
    expected = [name for name, spec in listed.items() if not spec.get("alias_of")
                and not (proxy_panel and name.startswith("proxy_"))
                and ("fallback" in name or "fallback" in spec["help"].lower())]
    assert {"fallbacks", "model_overrides", "max_attempts"} <= set(expected)
    search = page.get_by_label("Filter settings")
    search.fill("fallback")
    expect(page.locator("#settings-filter-status")).to_have_text(f"{len(expected)} settings match “fallback”.")
    assert sorted(shown_settings(page)) == sorted(expected)
    expect(routing.locator("details")).to_have_attribute("open", "")
    expect(section(page, "Access")).to_be_hidden()

    # every word counts, the label and the description included
    search.fill("login hours")
    expect(page.locator("#settings-filter-status")).to_have_text("1 setting match “login hours”.")
    assert shown_settings(page) == ["admin_session_hours"]
    search.fill("no such thing")
    expect(page.locator("#settings-filter-status")).to_have_text("No setting matches “no such thing”.")
    assert shown_settings(page) == []
    expect(page.locator("#settings-sections .settings-section:visible")).to_have_count(0)

    # Escape empties it: the sections as they were before (all folded)
    search.press("Escape")
    expect(search).to_have_value("")
    expect(page.locator("#settings-filter-status")).to_have_text("")
    expect(routing).to_be_visible()
    assert shown_settings(page) == []
    page.get_by_role("button", name="Expand all").click()
    assert "require_auth" in shown_settings(page) and "fallbacks" in shown_settings(page)


def test_an_error_in_a_folded_or_filtered_setting_is_brought_into_view(open_page, gw):
    page, _ = settings_page(open_page, gw)
    page.locator("#setting-max_body_bytes").fill("5")
    page.get_by_label("Filter settings").fill("require")
    expect(page.locator("#setting-max_body_bytes")).to_be_hidden()
    page.get_by_role("button", name="Save changes").click()
    expect(page.locator("#setting-max_body_bytes")).to_be_focused()
    expect(page.locator("#setting-max_body_bytes-error")).to_have_text("Must be at least 1024.")
    expect(page.get_by_label("Filter settings")).to_have_value("")
    page.get_by_role("button", name="Discard").click()


# --- fallbacks ---------------------------------------------------------------------------------------------

def test_fallbacks_built_in_the_form_are_stored_and_used(open_page, clean, upstream):
    gw = clean
    page, _ = settings_page(open_page, gw)
    expect(page.locator("#settings-applies")).to_have_text(f"A saved change applies {APPLIES}.")
    box = editor(page, "fallbacks")
    expect(box.get_by_text("No fallback chains")).to_be_visible()
    box.get_by_role("button", name="Add a fallback chain").click()
    model = box.get_by_label("Model", exact=True)
    expect(model).to_be_focused()
    model.fill("big-pickle")
    box.get_by_label("Fallback of big-pickle, 1 of 1", exact=True).fill("nemotron-3-super-free")
    box.get_by_role("button", name="Add a fallback", exact=True).click()
    second = box.get_by_label("Fallback of big-pickle, 2 of 2", exact=True)
    expect(second).to_be_focused()
    second.fill("mimo-v2-pro-free")
    box.get_by_role("button", name="Move up: Fallback of big-pickle, 2 of 2").click()
    expect(box.get_by_label("Fallback of big-pickle, 1 of 2", exact=True)).to_have_value("mimo-v2-pro-free")
    expect(page.locator("#model-suggestions option[value='gpt-5-nano']")).to_have_count(1)  # the suggestions
    expect(box.locator(".warn-text")).to_have_text("Not in the gateway's model list: mimo-v2-pro-free, "
                                                   "nemotron-3-super-free. It is sent upstream as written.")
    expect(page.locator("#settings-status")).to_have_text("1 unsaved change")

    page.get_by_role("button", name="Save changes").click()
    expect(page.locator("#settings-status")).to_have_text("Saved 1 setting.")
    expect(page.locator(".toast").last).to_have_text(f"Saved 1 setting. It applies {APPLIES}.")
    assert stored(gw, "fallbacks") == {"big-pickle": ["mimo-v2-pro-free", "nemotron-3-super-free"]}

    # the very next request: big-pickle fails, the first fallback answers
    upstream.reset()
    upstream.script("big-pickle", error(503, "overloaded", type="server_error"))
    answer = sdk(gw).chat.completions.create(model="big-pickle", messages=HELLO)
    assert answer.choices[0].message.content == "Hello from upstream"
    assert [r.model for r in upstream.requests if r.model] == ["big-pickle", "mimo-v2-pro-free"]


def test_raw_json_is_one_click_away_and_kept_in_sync_both_ways(open_page, clean):
    gw = clean
    gw.set_setting("fallbacks", {"big-pickle": ["gpt-5-nano"]})
    page, console = settings_page(open_page, gw)
    console.expect("status of 400")  # the gateway's refusal of the bad value, noted by the browser
    box = editor(page, "fallbacks")
    expect(box.get_by_label("Model", exact=True)).to_have_value("big-pickle")
    expect(box.get_by_label("Fallback of big-pickle, 1 of 1", exact=True)).to_have_value("gpt-5-nano")

    # form → raw: the JSON of what the form holds, unsaved edits included
    box.get_by_label("Fallback of big-pickle, 1 of 1", exact=True).fill("minimax-m2.5-free")
    box.get_by_role("button", name="Edit as raw JSON").click()
    raw = page.locator("#setting-fallbacks")
    expect(raw).to_be_focused()
    assert json.loads(raw.input_value()) == {"big-pickle": ["minimax-m2.5-free"]}
    expect(box.get_by_label("Model", exact=True)).to_be_hidden()

    # raw → form: the rows the JSON says
    raw.fill('{"big-pickle": ["minimax-m2.5-free", "gpt-5-nano"], "glm-5": []}')
    box.get_by_role("button", name="Edit as a form").click()
    expect(box.get_by_label("Fallback of big-pickle, 2 of 2", exact=True)).to_have_value("gpt-5-nano")
    expect(box.locator(".entry")).to_have_count(2)
    expect(box.locator(".entry").nth(1).get_by_label("Model", exact=True)).to_have_value("glm-5")

    # raw that is not JSON, or not of the shape, stays raw and says why
    box.get_by_role("button", name="Edit as raw JSON").click()
    raw.fill('{"big-pickle": ')
    box.get_by_role("button", name="Edit as a form").click()
    mode_error = page.locator("#setting-fallbacks-mode-error")
    expect(mode_error).to_contain_text("The form cannot show this JSON: Not valid JSON")
    expect(raw).to_be_visible()
    raw.fill('{"big-pickle": "gpt-5-nano"}')
    box.get_by_role("button", name="Edit as a form").click()
    expect(mode_error).to_have_text("The form cannot show this JSON: big-pickle: must be a list of model names. "
                                    "Correct it here, or save it as it is.")

    # saved as it is: the gateway's refusal under the field, nothing stored
    page.get_by_role("button", name="Save changes").click()
    expect(page.locator("#setting-fallbacks-error")).to_have_text("big-pickle: must be a list of model names")
    expect(raw).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#settings-status")).to_have_text("1 not saved: see the message under the field.")
    assert stored(gw, "fallbacks") == {"big-pickle": ["gpt-5-nano"]}

    # corrected in the raw JSON and saved: back in the form too
    raw.fill('{"big-pickle": ["glm-5"]}')
    page.get_by_role("button", name="Save changes").click()
    expect(page.locator("#settings-status")).to_have_text("Saved 1 setting.")
    assert stored(gw, "fallbacks") == {"big-pickle": ["glm-5"]}
    box.get_by_role("button", name="Edit as a form").click()
    expect(box.get_by_label("Fallback of big-pickle, 1 of 1", exact=True)).to_have_value("glm-5")
    expect(page.locator("#settings-save")).to_be_disabled()  # the same value either way


def test_the_form_refuses_what_the_gateway_would_before_sending(open_page, clean):
    gw = clean
    page, _ = settings_page(open_page, gw)
    box = editor(page, "fallbacks")
    for _ in range(2):
        box.get_by_role("button", name="Add a fallback chain").click()
    models = box.get_by_label("Model", exact=True)
    models.nth(0).fill("big-pickle")
    models.nth(1).fill("big-pickle")
    box.locator(".entry").nth(1).locator(".model-list input").fill("glm-5")
    page.get_by_role("button", name="Save changes").click()
    expect(page.locator("#setting-fallbacks-error")).to_have_text("big-pickle is listed twice: keep one row for it.")
    expect(models.nth(1)).to_be_focused()
    expect(models.nth(1)).to_have_attribute("aria-invalid", "true")
    box.get_by_role("button", name="Edit as raw JSON").click()
    expect(page.locator("#setting-fallbacks-mode-error")).to_have_text(
        "The form cannot become JSON yet: big-pickle is listed twice: keep one row for it.")
    box.get_by_role("button", name="Remove the chain of big-pickle").nth(1).click()
    expect(page.locator("#setting-fallbacks-error")).to_have_text("")
    page.get_by_role("button", name="Save changes").click()
    expect(page.locator("#settings-status")).to_have_text("Saved 1 setting.")
    assert stored(gw, "fallbacks") == {"big-pickle": []}


# --- model overrides and auto routes ------------------------------------------------------------------------

def test_model_overrides_and_auto_routes_are_edited_as_forms(open_page, clean, upstream):
    gw = clean
    gw.set_setting("model_overrides", {"glm-5": {"backend": "go", "vision": True}})
    page, _ = settings_page(open_page, gw)
    overrides = editor(page, "model_overrides")
    first = overrides.locator(".entry").nth(0)
    expect(first.get_by_label("Model", exact=True)).to_have_value("glm-5")
    expect(first.get_by_label("Tier or backend", exact=True)).to_have_value("go")
    expect(first.get_by_label("Reads images", exact=True)).to_have_value("true")

    overrides.get_by_role("button", name="Add a model").click()
    added = overrides.locator(".entry").nth(1)
    added.get_by_label("Model", exact=True).fill("mimo-v2-pro-free")
    added.get_by_label("Protocol", exact=True).select_option("anthropic")
    added.get_by_label("Context (tokens)", exact=True).fill("0")
    page.get_by_role("button", name="Save changes").click()
    expect(page.locator("#setting-model_overrides-error")).to_have_text(
        "Context (tokens): must be a whole number of at least 1.")
    expect(added.get_by_label("Context (tokens)", exact=True)).to_be_focused()
    added.get_by_label("Context (tokens)", exact=True).fill("131072")
    added.get_by_label("Most output (tokens)", exact=True).fill("8192")
    added.get_by_label("Free", exact=True).select_option("yes")
    added.get_by_role("button", name="Add a fallback", exact=True).click()
    added.get_by_label("Fallback of mimo-v2-pro-free, 1 of 1", exact=True).fill("big-pickle")

    # auto routes: free-auto's list for requests with tools
    routes = editor(page, "auto_routes")
    tools = routes.get_by_role("group", name="free-auto, with tools")
    tools.get_by_role("button", name="Add a model").click()
    tools.get_by_label("free-auto, with tools, 1 of 1", exact=True).fill("nemotron-3-super-free")
    page.get_by_role("button", name="Save changes").click()
    expect(page.locator("#settings-status")).to_have_text("Saved 2 settings.")
    expect(page.locator(".toast").last).to_have_text(f"Saved 2 settings. They apply {APPLIES}.")
    assert stored(gw, "model_overrides") == {
        "glm-5": {"backend": "go", "vision": True},
        "mimo-v2-pro-free": {"protocol": "anthropic", "context": 131072, "max_output": 8192, "free": True,
                             "fallbacks": ["big-pickle"]}}
    assert stored(gw, "auto_routes") == {"free": {"tools": ["nemotron-3-super-free"]}}

    upstream.reset()
    tool = {"type": "function", "function": {"name": "ls", "parameters": {"type": "object", "properties": {}}}}
    answer = sdk(gw).chat.completions.with_raw_response.create(model="free-auto", messages=HELLO, tools=[tool])
    assert answer.headers["x-zengate-model"] == "nemotron-3-super-free"
    assert [r.model for r in upstream.requests if r.model] == ["nemotron-3-super-free"]
    upstream.reset()
    sdk(gw).chat.completions.create(model="mimo-v2-pro-free", messages=HELLO)
    (sent,) = [r for r in upstream.requests if r.model]
    assert sent.path.endswith("/messages")  # the override's protocol: Anthropic's

    # a stored value the form cannot show opens as raw JSON, saying why
    gw.set_setting("auto_routes", {"free": {}})
    page.reload()
    expect(page.locator("#setting-auto_routes")).to_be_visible()
    expect(page.locator("#setting-auto_routes-mode-error")).to_have_text(
        "Shown as JSON: the form cannot show this value (free: has no lists.)")


# --- a phone ----------------------------------------------------------------------------------------------

def test_the_settings_page_works_on_a_phone(open_page, clean, screenshot):
    gw = clean
    gw.set_setting("fallbacks", {"big-pickle": ["mimo-v2-pro-free", "nemotron-3-super-free"]})
    page, _ = settings_page(open_page, gw, viewport=PHONE, scale=2)
    page.get_by_label("Filter settings").fill("fallback")
    box = editor(page, "fallbacks")
    box.get_by_role("button", name="Add a fallback", exact=True).click()
    box.get_by_label("Fallback of big-pickle, 3 of 3", exact=True).fill("glm-5")
    overrides = editor(page, "model_overrides")
    overrides.get_by_role("button", name="Add a model").click()
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the settings page is wider than the phone by {overflow}px"
    controls = page.locator('[data-setting="fallbacks"] :is(input, button, select),'
                            ' [data-setting="model_overrides"] :is(input, button, select)')
    boxes = [b for b in controls.evaluate_all(
        "els => els.filter(e => e.offsetParent).map(e => { const r = e.getBoundingClientRect();"
        " return {left: r.left, right: r.right, name: e.getAttribute('aria-label') || e.id || e.textContent}; })")]
    assert boxes and all(b["left"] >= 0 and b["right"] <= PHONE["width"] for b in boxes), [
        b for b in boxes if b["left"] < 0 or b["right"] > PHONE["width"]]
    save = page.get_by_role("button", name="Save changes")
    expect(save).to_be_in_viewport()  # the bar stays at the bottom of the screen
    screenshot(page, "phone-settings-fallbacks")
    page.get_by_role("button", name="Discard").click()
    page.get_by_label("Filter settings").fill("")
    expect(page.locator("#settings-filter-status")).to_have_text("")
