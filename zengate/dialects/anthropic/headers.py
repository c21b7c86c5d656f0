"""The client headers an Anthropic-protocol upstream may see: ``anthropic-beta``, filtered.

Nothing else of a client's headers goes upstream. The betas kept are those the catalog knows
Anthropic-protocol upstreams accept (``zengate.exchange.catalog.ANTHROPIC_BETAS`` and the models
file's ``anthropic_betas``): an upstream may refuse a beta it does not know.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

ANTHROPIC_HEADER_ALLOW_LIST = ("anthropic-beta",)
_FILTER_CACHE_MAX = 64  # distinct (header value, accepted list) pairs remembered per worker
_LOG_ONCE_MAX = 256  # distinct unknown betas logged per worker; after that, one last line and silence
_filtered: dict[tuple[str, frozenset[str]], str] = {}
_logged: set[str] = set()

def passed_headers(headers, betas: frozenset[str]) -> dict[str, str]:
    """The allow-listed client headers, for passthrough to an Anthropic-protocol upstream.

    ``anthropic-beta`` keeps only the values in ``betas`` (what Anthropic-protocol upstreams are
    known to accept: the catalog's ``anthropic_betas``); left empty, it is not sent.
    """
    out = {}
    for name in ANTHROPIC_HEADER_ALLOW_LIST:
        value = headers.get(name)
        if value and name == "anthropic-beta":
            value = filter_betas(value, betas)
        if value:
            out[name] = value
    return out


def filter_betas(value: str, accepted: frozenset[str]) -> str:
    """The comma-separated betas of ``value`` that are in ``accepted``, in order, without repeats.

    A client sends the same header on every request (Claude Code's names eight or nine), so each
    distinct value is worked out once per worker and remembered (a bounded cache: a client sending
    ever new values costs the split, never memory). A beta dropped is logged once per worker.
    """
    key = (value, accepted)
    kept = _filtered.get(key)
    if kept is not None:
        return kept
    names = [n for n in (part.strip() for part in value.split(",")) if n]
    kept = ",".join(dict.fromkeys(n for n in names if n in accepted))
    for name in names:
        if name not in accepted:
            _log_dropped(name)
    if len(_filtered) >= _FILTER_CACHE_MAX:
        _filtered.clear()
    _filtered[key] = kept
    return kept


def _log_dropped(name: str) -> None:
    if name in _logged or len(_logged) > _LOG_ONCE_MAX:
        return
    _logged.add(name)
    if len(_logged) > _LOG_ONCE_MAX:
        log.info("more anthropic-beta values were dropped; no more are logged by this worker")
        return
    log.info("anthropic-beta %r is not sent upstream: Anthropic-protocol upstreams are not known to accept it "
             "(list it under anthropic_betas in ZENGATE_MODELS_FILE to send it)", name[:100])

