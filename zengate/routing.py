"""Model name → Route: which upstream, which protocol, which upstream model, which key.

Pure: everything it needs comes in as arguments, so each decision is a unit test.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from . import catalog
from .config import Config

_CLAUDE = re.compile(r"^(?:anthropic/)?claude-", re.IGNORECASE)
_FAMILY = re.compile(r"(opus|sonnet|haiku)", re.IGNORECASE)


@dataclass(frozen=True)
class Route:
    client_model: str  # what the client asked for; echoed back in answers
    upstream_model: str
    base_url: str
    protocol: str  # openai | anthropic
    key: str
    tier: str = "zen"
    max_output: int | None = None

    def url(self) -> str:
        return self.base_url + ("/messages" if self.protocol == "anthropic" else "/chat/completions")


def claude_family(model: str) -> str | None:
    """``opus`` / ``sonnet`` / ``haiku`` / ``default`` for a Claude model name, else None."""
    name = model.strip()
    if name.lower() in ("opus", "sonnet", "haiku") or name.lower().split("[")[0] in ("opus", "sonnet", "haiku"):
        return name.lower().split("[")[0]
    if not _CLAUDE.match(name):
        return None
    match = _FAMILY.search(name)
    return match.group(1).lower() if match else "default"


def resolve(model: str, *, config: Config, model_map: dict[str, str] | None = None,
            protocol_overrides: dict[str, str] | None = None) -> Route:
    """Where a request for ``model`` goes."""
    upstream_model = model.strip()
    known = {m.id for m in catalog.BUILTIN}
    family = claude_family(upstream_model)
    if family and upstream_model not in known and model_map:
        upstream_model = model_map.get(family) or model_map.get("default") or upstream_model
    info = catalog.describe(upstream_model)
    protocol = (protocol_overrides or {}).get(upstream_model) or info.protocol
    return Route(
        client_model=model,
        upstream_model=upstream_model,
        base_url=config.upstream_url,
        protocol=protocol,
        key=config.api_key,
        max_output=info.max_output,
    )
