"""What the gateway serves, as the dashboard's Models page shows it (``GET /_admin/models``).

Every model of the catalog (the tiers' live lists, the built-in knowledge, the models file and the
``model_overrides`` setting) with what routing would do with it: its tier or backend, the upstream
protocol it is spoken to in, its limits, whether its tier's live list names it now, its fallback
chain, the aliases and model-map families that lead to it, and its traffic over a window. Pure
functions of the router, the routing settings and per-name traffic the caller read from the log.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from .catalog import BUILTIN
from .routing import Router, RoutingSettings

#: The ``model_map`` families, in the order the page shows them (``default`` takes the rest).
FAMILIES = ("opus", "sonnet", "haiku", "gemini", "default")
#: At most this many names seen in the log but unknown to the catalog get a row of their own.
MAX_LOG_ONLY = 50


@dataclass
class Traffic:
    """One name's requests in the window: counts over every row, latencies over a bounded sample."""

    requests: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)


def family_map(model_map: Mapping[str, str]) -> list[dict]:
    """Which model each family of client model names goes to; ``own`` is false when it falls to ``default``."""
    default = model_map.get("default") or None
    return [{"family": family, "model": model_map.get(family) or default, "own": bool(model_map.get(family))}
            for family in FAMILIES]


def _bare(name: str, backends: Iterable[str]) -> str:
    """``name`` without a ``backend:`` prefix naming a configured backend."""
    prefix, sep, rest = name.partition(":")
    return rest if sep and rest and prefix in backends else name


def _kind(tier: str) -> str:
    return tier if tier in ("zen", "go") else "backend"


def model_rows(router: Router, settings: RoutingSettings) -> list[dict]:
    """One row per catalog model: knowledge and routing, without traffic."""
    catalog, backends = router.catalog, router.backends
    # the catalog's entries (live lists, models file, overrides), then every built-in model
    names = {entry["id"]: entry["name"] for entry in catalog.entries(settings.model_overrides)}
    ids = dict.fromkeys((*names, *(model.id for model in BUILTIN)))
    live = {tier: catalog.live_ids(tier) for tier in ("zen", "go")}
    aliases: dict[str, list[str]] = {}
    for alias, target in catalog.file.aliases.items():  # a target may name its backend ("zai:glm-4.6")
        aliases.setdefault(_bare(target, backends), []).append(alias)
    families: dict[str, list[str]] = {}
    for entry in family_map(settings.model_map):
        if entry["model"]:
            families.setdefault(_bare(entry["model"], backends), []).append(entry["family"])
    rows = []
    for model_id in ids:
        info = catalog.info(model_id, settings.model_overrides)
        backend = backends.get(info.tier)
        listed = live.get(info.tier)
        rows.append({
            "id": model_id,
            "name": names.get(model_id) or info.name,
            "tier": info.tier,
            "kind": _kind(info.tier),
            "free": info.free,
            "protocol": (backend.protocol if backend else None) or settings.model_protocols.get(model_id)
            or info.protocol,
            "upstream_model": info.upstream_model,
            "context": info.context,
            "max_output": info.max_output,
            "live": None if listed is None else model_id in listed,
            "has_key": bool(backend and backend.keys),
            "fallbacks": list(settings.fallbacks.get(model_id, info.fallbacks)),
            "aliases": aliases.get(model_id, []),
            "families": families.get(model_id, []),
            "source": "catalog",
        })
    rows.sort(key=lambda r: ({"zen": 0, "go": 1}.get(r["tier"], 2), not r["free"], r["tier"], r["id"]))
    return rows


def _owner(name: str, by_id: Mapping[str, dict], aliases: Mapping[str, str], backends: Iterable[str]) -> dict | None:
    """The row a log name counts for: the model itself, a backend's own name for it, or an alias of it."""
    if name in by_id:
        return by_id[name]
    for row in by_id.values():
        if row["upstream_model"] == name:
            return row
    target = aliases.get(name)
    return by_id.get(_bare(target, backends)) if target else None


def model_table(router: Router, settings: RoutingSettings, traffic: Mapping[str, Traffic],
                median: Callable[[list[float]], float | None]) -> dict:
    """The Models page's table: catalog rows with their traffic, then names only the log knows.

    ``traffic`` is keyed by the name a log row holds (the model that answered, else the one asked
    for); ``median`` turns a latency sample into its median.
    """
    rows = model_rows(router, settings)
    by_id = {row["id"]: row for row in rows}
    aliases = router.catalog.file.aliases
    merged: dict[str, Traffic] = {}
    unknown: dict[str, Traffic] = {}
    for name, numbers in traffic.items():
        row = _owner(name, by_id, aliases, router.backends)
        into = merged.setdefault(row["id"], Traffic()) if row else unknown.setdefault(name, Traffic())
        into.requests += numbers.requests
        into.errors += numbers.errors
        into.latencies.extend(numbers.latencies)
    busiest = sorted(unknown, key=lambda n: (-unknown[n].requests, n))[:MAX_LOG_ONLY]
    rows += [{"id": name, "name": name, "tier": None, "kind": None, "free": None, "protocol": None,
              "upstream_model": None, "context": None, "max_output": None, "live": None, "has_key": None,
              "fallbacks": [], "aliases": [], "families": [], "source": "log"} for name in busiest]
    for row in rows:
        numbers = merged.get(row["id"]) or unknown.get(row["id"]) or Traffic()
        row.update(requests=numbers.requests, errors=numbers.errors, median_latency_ms=median(numbers.latencies))
    return {"models": rows, "families": family_map(settings.model_map), "aliases": dict(aliases),
            "log_only_left_out": max(0, len(unknown) - MAX_LOG_ONLY)}
