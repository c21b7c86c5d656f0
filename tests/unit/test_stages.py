"""Stages on the internal form (zengate.exchange.stages) and their place in the exchange.

The ``stages`` setting is checked when it is set (a 400 naming it); the choice goes key, then
model, then default; the stages run in order and never change the form they were given. Through
the app, for each client API in front of each upstream API: a stage's change reaches the upstream
(even when both speak the same API, where the client's body would otherwise go up as it came),
and with no stage chosen the passthrough body is the client's own.
"""

from __future__ import annotations

import copy

import pytest

from zengate.exchange import stages
from zengate.exchange.stages import StageContext

SYSTEM = "the stage was here"


def set_system(form: dict, context: StageContext) -> dict:
    return {**form, "system": SYSTEM}


def nothing(form: dict, context: StageContext) -> None:
    return None


def appended(mark: str):
    def stage(form: dict, context: StageContext) -> dict:
        return {**form, "x_marks": [*form.get("x_marks", []), mark]}
    return stage


@pytest.fixture
def registered(monkeypatch):
    """The test stages under their names, for as long as the test runs."""
    for name, stage in {"set_system": set_system, "nothing": nothing,
                        "a": appended("a"), "b": appended("b")}.items():
        monkeypatch.setitem(stages.REGISTRY, name, stage)


# --- the setting -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "needle"), [
    ([], "must be an object"),
    ({"always": []}, "unknown parts"),
    ({"default": "set_system"}, "default: must be a list"),
    ({"default": [3]}, "default: must be a list"),
    ({"default": ["missing"]}, "unknown stages ['missing']"),
    ({"models": []}, "models: must be an object"),
    ({"models": {"big-pickle": ["missing"]}}, "models.big-pickle: unknown stages"),
    ({"keys": {"sk-zen-abcdef": "a"}}, "keys.sk-zen-abcdef: must be a list"),
])
def test_a_bad_stages_setting_is_refused_naming_it(client, admin_headers, registered, value, needle):
    before = client.get("/_admin/settings", headers=admin_headers).get_json()["settings"]["stages"]
    r = client.post("/_admin/settings", json={"key": "stages", "value": value}, headers=admin_headers)
    assert r.status_code == 400
    error = r.get_json()["error"]
    assert error["param"] == "stages" and needle in error["message"], error
    assert client.get("/_admin/settings", headers=admin_headers).get_json()["settings"]["stages"] == before


def test_the_refusal_lists_the_known_stages(client, admin_headers, registered):
    r = client.post("/_admin/settings", json={"key": "stages", "value": {"default": ["nope"]}},
                    headers=admin_headers)
    assert "known: a, b, nothing, set_system" in r.get_json()["error"]["message"]


def test_a_good_setting_is_kept(client, admin_headers, registered):
    value = {"default": ["a"], "models": {"big-pickle": ["b", "a"]}, "keys": {"sk-zen-abcdef": []}}
    r = client.post("/_admin/settings", json={"key": "stages", "value": value}, headers=admin_headers)
    assert r.status_code == 200 and r.get_json()["value"] == value
    assert client.get("/_admin/settings", headers=admin_headers).get_json()["settings"]["stages"] == value


# --- choice and run ----------------------------------------------------------------------------------------


def test_a_key_wins_over_a_model_and_a_model_over_the_default(registered):
    setting = {"default": ["a"], "models": {"m": ["b"]}, "keys": {"sk-zen-k": ["nothing"]}}
    assert stages.chosen(setting, model="m", key="sk-zen-k") == (nothing,)
    assert [s.__name__ for s in stages.chosen(setting, model="m", key="sk-zen-other")] == ["stage"]
    assert stages.chosen(setting, model="m", key=None) == (stages.REGISTRY["b"],)
    assert stages.chosen(setting, model="other", key=None) == (stages.REGISTRY["a"],)
    assert stages.chosen({"keys": {"sk-zen-k": []}, "default": ["a"]}, model="m", key="sk-zen-k") == ()
    assert stages.chosen({}, model="m", key="sk-zen-k") == ()


def test_a_stage_unregistered_since_the_setting_was_made_is_skipped(registered):
    assert stages.chosen({"default": ["a", "gone", "b"]}, model="m", key=None) == (
        stages.REGISTRY["a"], stages.REGISTRY["b"])


def test_run_goes_in_order_and_leaves_the_given_form_alone(registered):
    form = {"messages": [{"role": "user", "content": "hi"}], "x_marks": ["start"]}
    kept = copy.deepcopy(form)
    context = StageContext("openai", "m")
    result = stages.run((stages.REGISTRY["a"], nothing, stages.REGISTRY["b"]), form, context)
    assert result["x_marks"] == ["start", "a", "b"]
    assert form == kept
    assert stages.run((nothing,), form, context) is None
    assert stages.run((), form, context) is None


def test_a_stage_gets_what_it_may_know_of_the_request(client, admin_headers, monkeypatch, upstream):
    seen: list[StageContext] = []

    def watch(form: dict, context: StageContext) -> None:
        seen.append(context)

    monkeypatch.setitem(stages.REGISTRY, "watch", watch)
    key = client.post("/_admin/api-keys", json={"name": "t"}, headers=admin_headers).get_json()
    r = client.post("/_admin/settings", json={"key": "stages", "value": {"default": ["watch"]}},
                    headers=admin_headers)
    assert r.status_code == 200, r.get_json()
    r = client.post("/v1/messages", json=ANTHROPIC_BODY("big-pickle"), headers={"x-api-key": key["key"]})
    assert r.status_code == 200, r.get_json()
    assert seen == [StageContext("anthropic", "big-pickle", key["prefix"])]
    assert upstream.requests[-1].body["messages"][-1]["content"] == "hi"  # big-pickle speaks chat


# --- through the app ---------------------------------------------------------------------------------------


def OPENAI_BODY(model: str) -> dict:
    return {"model": model, "messages": [{"role": "system", "content": "client system"},
                                         {"role": "user", "content": "hi"}], "max_tokens": 64}


def ANTHROPIC_BODY(model: str) -> dict:
    return {"model": model, "max_tokens": 64, "system": "client system",
            "messages": [{"role": "user", "content": "hi"}]}


def RESPONSES_BODY(model: str) -> dict:
    return {"model": model, "instructions": "client system", "input": "hi", "max_output_tokens": 64}


CLIENTS = {
    "openai": ("/v1/chat/completions", OPENAI_BODY),
    "anthropic": ("/v1/messages", ANTHROPIC_BODY),
    "responses": ("/v1/responses", RESPONSES_BODY),
}


def upstream_system(protocol: str, body: dict) -> str:
    """The system text an upstream request of ``protocol`` carries."""
    if protocol == "openai":
        return "".join(m["content"] if isinstance(m["content"], str) else "".join(p["text"] for p in m["content"])
                       for m in body["messages"] if m["role"] == "system")
    if protocol == "anthropic":
        system = body["system"]
        return system if isinstance(system, str) else "".join(b["text"] for b in system)
    return body["instructions"]


def answer_text(client_api: str, body: dict) -> str:
    if client_api == "openai":
        return body["choices"][0]["message"]["content"]
    if client_api == "anthropic":
        return "".join(b["text"] for b in body["content"] if b["type"] == "text")
    return body["output_text"] if "output_text" in body else "".join(
        p["text"] for item in body["output"] if item["type"] == "message" for p in item["content"])


@pytest.fixture
def protocols(client, admin_headers):
    """Three models, one per upstream API."""
    value = {"m-openai": "openai", "m-anthropic": "anthropic", "m-responses": "responses"}
    r = client.post("/_admin/settings", json={"key": "model_protocols", "value": value}, headers=admin_headers)
    assert r.status_code == 200, r.get_json()


@pytest.mark.parametrize("upstream_api", ["openai", "anthropic", "responses"])
@pytest.mark.parametrize("client_api", ["openai", "anthropic", "responses"])
def test_a_stage_change_reaches_every_upstream(client, admin_headers, upstream, registered, protocols,
                                                 client_api, upstream_api):
    model = f"m-{upstream_api}"
    r = client.post("/_admin/settings", json={"key": "stages", "value": {"models": {model: ["set_system"]}}},
                    headers=admin_headers)
    assert r.status_code == 200, r.get_json()
    path, body = CLIENTS[client_api]
    r = client.post(path, json=body(model))
    assert r.status_code == 200, r.get_json()
    assert answer_text(client_api, r.get_json())  # the upstream's answer came back in the client's API
    sent = upstream.requests[-1]
    assert sent.path.endswith({"openai": "/chat/completions", "anthropic": "/messages",
                               "responses": "/responses"}[upstream_api])
    assert upstream_system(upstream_api, sent.body) == SYSTEM
    assert sent.body["model"] == model


@pytest.mark.parametrize("client_api", ["openai", "anthropic", "responses"])
def test_without_a_stage_the_same_api_gets_the_clients_own_body(client, admin_headers, upstream, registered,
                                                                 protocols, client_api):
    other = "m-openai" if client_api != "openai" else "m-anthropic"
    r = client.post("/_admin/settings", json={"key": "stages", "value": {"models": {other: ["set_system"]},
                                                                          "default": ["nothing"]}},
                    headers=admin_headers)
    assert r.status_code == 200, r.get_json()
    path, body = CLIENTS[client_api]
    sent_body = {**body(f"m-{client_api}"), "x_client_field": {"kept": True}}  # passthrough keeps what it came with
    r = client.post(path, json=sent_body)
    assert r.status_code == 200, r.get_json()
    sent = upstream.requests[-1].body
    assert sent["x_client_field"] == {"kept": True}
    assert upstream_system(client_api, sent) == "client system"


def test_a_stage_runs_once_for_all_attempts(client, admin_headers, upstream, monkeypatch, protocols):
    from tests.support.fake_upstream import error

    calls: list[str] = []

    def counted(form: dict, context: StageContext) -> dict:
        calls.append(context.model)
        return {**form, "system": SYSTEM}

    monkeypatch.setitem(stages.REGISTRY, "counted", counted)
    for key, value in (("stages", {"default": ["counted"]}), ("fallbacks", {"m-openai": ["m-anthropic"]})):
        r = client.post("/_admin/settings", json={"key": key, "value": value}, headers=admin_headers)
        assert r.status_code == 200, r.get_json()
    upstream.script("m-openai", error(503, "overloaded", type="api_error"))
    r = client.post("/v1/chat/completions", json=OPENAI_BODY("m-openai"))
    assert r.status_code == 200, r.get_json()
    assert calls == ["m-openai"]
    first, second = upstream.requests[-2:]
    assert (first.body["model"], second.body["model"]) == ("m-openai", "m-anthropic")
    assert upstream_system("openai", first.body) == SYSTEM and second.body["system"] in (
        SYSTEM, [{"type": "text", "text": SYSTEM}])
