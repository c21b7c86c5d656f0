"""GET /metrics: who may read it, and what a request, a stream and an upstream failure add to it.

These run in one process (the Flask test client), where the metrics live in prometheus_client's
default registry and accumulate over the whole test session: every check is on a difference.
The same numbers merged across gunicorn workers are checked in tests/e2e/test_operations_e2e.py.
"""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.fake_upstream import drop_after, error, openai_text
from tests.support.gateway import ADMIN_PASSWORD

ROUTE = "/v1/chat/completions"


def parse(text: str) -> dict[tuple[str, tuple], float]:
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def scrape(client, headers) -> dict:
    r = client.get("/metrics", headers=headers)
    assert r.status_code == 200, r.get_data(as_text=True)
    assert r.content_type.startswith("text/plain")
    return parse(r.get_data(as_text=True))


def chat(client, stream: bool = False, *, read: bool = True, **extra):
    body = {"model": "big-pickle", "stream": stream, "messages": [{"role": "user", "content": "hi"}], **extra}
    response = client.post(ROUTE, json=body, buffered=read)
    if read:
        response.get_data()  # a stream is finished (and counted) once it has been read
    return response


def test_metrics_need_admin_or_the_metrics_token(client, admin_headers, gateway):
    r = client.get("/metrics")
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/metrics", headers={"Authorization": "Bearer not-the-token-at-all"}).status_code == 401
    assert client.get("/metrics", headers=admin_headers).status_code == 200

    assert client.get("/_admin/metrics-token").status_code == 401  # managing it is for admins
    assert client.get("/_admin/metrics-token", headers=admin_headers).get_json() == {"set": False,
                                                                                      "environment": False}
    r = client.post("/_admin/metrics-token", headers=admin_headers)
    assert r.status_code == 201
    token = r.get_json()["token"]
    assert token.startswith("zgm_") and len(token) > 40
    bearer = {"Authorization": f"Bearer {token}"}
    body = client.get("/metrics", headers=bearer)
    assert body.status_code == 200 and token not in body.get_data(as_text=True)
    # only its digest is stored, and the settings API does not show even that
    assert gateway.settings.get("metrics_token_hash") not in ("", token)
    settings = client.get("/_admin/settings", headers=admin_headers).get_data(as_text=True)
    assert "metrics_token" not in settings and token not in settings

    chosen = "a-token-chosen-by-the-operator"
    r = client.post("/_admin/metrics-token", headers=admin_headers, json={"token": chosen})
    assert r.status_code == 201
    assert client.get("/metrics", headers=bearer).status_code == 401  # the old one is gone
    assert client.get("/metrics", headers={"Authorization": f"Bearer {chosen}"}).status_code == 200
    r = client.post("/_admin/metrics-token", headers=admin_headers, json={"token": "short"})
    assert r.status_code == 400 and r.get_json()["error"]["param"] == "token"

    assert client.delete("/_admin/metrics-token", headers=admin_headers).get_json() == {"deleted": True}
    assert client.get("/metrics", headers={"Authorization": f"Bearer {chosen}"}).status_code == 401


def test_metrics_token_from_the_environment(make_app):
    app = make_app(metrics_token="token-from-the-environment-123")
    client = app.test_client()
    assert client.get("/metrics", headers={"Authorization": "Bearer token-from-the-environment-123"}).status_code == 200
    assert client.get("/metrics", headers={"Authorization": "Bearer token-from-the-environment-12"}).status_code == 401


def test_dashboard_cookie_session_reads_metrics(client):
    r = client.post("/_admin/login", json={"password": ADMIN_PASSWORD, "cookie": True})
    assert r.status_code == 200
    assert client.get("/metrics").status_code == 200


def test_a_request_counts_by_route_model_and_status(client, admin_headers, up_default):
    before = scrape(client, admin_headers)
    assert chat(client).status_code == 200
    assert chat(client, stream=True, stream_options={"include_usage": True}).status_code == 200
    after = scrape(client, admin_headers)
    labels = {"route": ROUTE, "model": "big-pickle"}
    assert value(after, "zengate_requests_total", status="200", **labels) - value(
        before, "zengate_requests_total", status="200", **labels) == 2
    for name in ("zengate_request_duration_seconds_count", "zengate_time_to_first_byte_seconds_count"):
        assert value(after, name, **labels) - value(before, name, **labels) == 2
    assert value(after, "zengate_request_duration_seconds_bucket", le="+Inf", **labels) - value(
        before, "zengate_request_duration_seconds_bucket", le="+Inf", **labels) == 2
    for direction, per_request in (("input", 10), ("output", 5)):
        assert value(after, "zengate_tokens_total", model="big-pickle", direction=direction) - value(
            before, "zengate_tokens_total", model="big-pickle", direction=direction) == 2 * per_request
    assert value(after, "zengate_open_streams") == 0
    assert value(after, "zengate_build_info", version=__import__("zengate").__version__) == 1


def test_free_form_model_names_cannot_grow_the_series(client, admin_headers, monkeypatch):
    """Unknown model names are passed upstream; past the cap they count as "other", catalog models never do."""
    from zengate.runtime import metrics

    monkeypatch.setattr(metrics, "MAX_MODEL_LABELS", 0)
    monkeypatch.setattr(metrics, "_model_labels", {})
    before = scrape(client, admin_headers)
    free_form = "no-such-model-" + "x" * 30  # the registry is the process's: other tests' names may be in it
    assert chat(client, model=free_form).status_code == 200
    assert chat(client).status_code == 200
    after = scrape(client, admin_headers)
    assert not any(free_form in str(key) for key in after)
    for model in ("other", "big-pickle"):
        assert value(after, "zengate_requests_total", route=ROUTE, model=model, status="200") - value(
            before, "zengate_requests_total", route=ROUTE, model=model, status="200") == 1


def test_upstream_errors_count_by_kind(client, admin_headers, upstream):
    before = scrape(client, admin_headers)
    upstream.script("big-pickle", error(500, "boom", type="server_error"))
    assert chat(client).status_code == 500
    after = scrape(client, admin_headers)
    assert value(after, "zengate_upstream_errors_total", kind="http", status="500") - value(
        before, "zengate_upstream_errors_total", kind="http", status="500") == 1



def test_connection_failures_count_as_connection(make_app, tmp_path):
    app = make_app(upstream_url="http://127.0.0.1:9", database_url=f"sqlite:///{tmp_path / 'other.db'}")
    client = app.test_client()
    headers = {"Authorization": "Bearer " + client.post("/_admin/login", json={"password": ADMIN_PASSWORD})
               .get_json()["token"]}
    before = scrape(client, headers)
    assert chat(client).status_code == 502
    after = scrape(client, headers)
    assert value(after, "zengate_upstream_errors_total", kind="connection", status="502") - value(
        before, "zengate_upstream_errors_total", kind="connection", status="502") >= 1
    assert value(after, "zengate_requests_total", route=ROUTE, model="big-pickle", status="502") - value(
        before, "zengate_requests_total", route=ROUTE, model="big-pickle", status="502") == 1


def test_a_stream_broken_mid_way_counts_as_mid_stream(client, admin_headers, upstream):
    before = scrape(client, admin_headers)
    upstream.script("big-pickle", drop_after(2, openai_text("one two three four five", chunks=5)))
    r = chat(client, stream=True)
    assert r.status_code == 200 and b"error" in r.data
    after = scrape(client, admin_headers)
    delta = sum(v - value(before, name, **dict(labels)) for (name, labels), v in after.items()
                if name == "zengate_upstream_errors_total" and dict(labels)["status"] == "mid_stream")
    assert delta == 1


def test_open_streams_while_a_stream_runs(client, admin_headers, upstream):
    upstream.script("big-pickle", openai_text("a b c d", chunks=4, delay=0.3))
    baseline = value(scrape(client, admin_headers), "zengate_open_streams")
    response = chat(client, stream=True, read=False)
    chunks = iter(response.response)
    first = next(chunks)  # the stream is open: its first bytes arrived
    assert first
    assert value(scrape(client, admin_headers), "zengate_open_streams") == baseline + 1
    rest = b"".join(chunks)
    response.close()
    assert b"[DONE]" in first + rest
    assert value(scrape(client, admin_headers), "zengate_open_streams") == baseline


def test_queue_and_proxy_gauges(client, admin_headers, gateway):
    gateway.request_log.record({"created_at": None})  # a row nobody will write: the queue shows it
    try:
        samples = scrape(client, admin_headers)
        assert value(samples, "zengate_request_log_queue_depth") == gateway.request_log.pending >= 1
    finally:
        gateway.request_log._queue.clear()
    assert value(samples, "zengate_proxy_mode", mode="off") == 1
    assert value(samples, "zengate_proxy_mode", mode="on") == 0
    assert ("zengate_proxy_pool_proxies", (("state", "alive"),)) in samples
    gateway.settings.set("proxy_mode", "on")
    gateway.settings.set("proxy_static", "http://user:proxy-password@127.0.0.1:3128")
    samples = scrape(client, admin_headers)
    assert value(samples, "zengate_proxy_mode", mode="on") == 1
    assert value(samples, "zengate_proxy_mode", mode="off") == 0
    gateway.egress.sync_static()
    samples = scrape(client, admin_headers)
    assert value(samples, "zengate_proxy_pool_proxies", state="static") == 1
    assert value(samples, "zengate_proxy_pool_proxies", state="alive") == 1
    assert "proxy-password" not in client.get("/metrics", headers=admin_headers).get_data(as_text=True)


@pytest.fixture
def up_default(upstream):
    upstream.reset()
    return upstream

