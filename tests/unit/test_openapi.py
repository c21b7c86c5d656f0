"""GET /openapi.json describes exactly the routes the app has."""

from __future__ import annotations

import re

#: Flask's own static route (the app has no static folder of its own; the dashboard's is described).
NOT_DESCRIBED = {"/static/{filename}"}
IMPLICIT = {"HEAD", "OPTIONS"}


def _openapi_path(rule: str) -> str:
    return re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule)


def test_spec_paths_match_the_url_map(app, client):
    r = client.get("/openapi.json")
    assert r.status_code == 200 and r.headers["X-Content-Type-Options"] == "nosniff"
    spec = r.get_json()
    assert spec["openapi"].startswith("3.1")
    described = {(path, method.upper()) for path, ops in spec["paths"].items() for method in ops}
    routed = {(_openapi_path(rule.rule), method) for rule in app.url_map.iter_rules()
              for method in rule.methods - IMPLICIT if _openapi_path(rule.rule) not in NOT_DESCRIBED}
    assert described - routed == set(), "described but not routed"
    assert routed - described == set(), "routed but not described in zengate/web/openapi.py"


def test_every_operation_has_responses_and_refs_resolve(client):
    spec = client.get("/openapi.json").get_json()
    schemas = spec["components"]["schemas"]
    text = str(spec)
    for ref in re.findall(r"#/components/schemas/(\w+)", text):
        assert ref in schemas, ref
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            assert op["responses"] and op["summary"], (path, method)
            for param in op.get("parameters", []):
                if param["in"] == "path":
                    assert "{" + param["name"] + "}" in path
    assert "AnthropicError" in str(spec["paths"]["/v1/messages"]["post"]["responses"]["400"])
    assert "OpenAIError" in str(spec["paths"]["/v1/chat/completions"]["post"]["responses"]["400"])
    assert "429" in spec["paths"]["/_admin/login"]["post"]["responses"]
