"""A request's trimming, rewriting rules and prompt redaction (zengate/steering/trim.py, rewrite.py,
redact.py) as the exchange's stages and answer guard, each noting on the request's record what it did."""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial

from ...exchange.records import RequestRecord
from ...exchange.serve import GuardFactory
from ...exchange.stages import Stage, StageContext, switched_on
from ...gateway import Gateway
from ...steering import redact, rewrite, trim


def for_request(gw: Gateway, record: RequestRecord, body: dict,
                models: Iterable[str]) -> tuple[tuple[Stage, ...], GuardFactory | None]:
    """The stages (trimming, rewriting, then redaction) and the answer guard for the client's
    ``body`` sent for ``models`` (the client's and the one it goes to); nothing when all are off.
    Trimming is left out of a conversation too short to have old turns (its body is not read)."""
    stages: list[Stage] = []
    guard = None
    client_model, *_ = models
    steps = switched_on(gw.settings.get("trimming"), trim.STEPS, model=client_model, key=record.key_prefix)
    if steps and trim.could_trim(body, keep_turns := gw.settings.get("trim_keep_turns")):
        options = trim.TrimOptions(**{name: name in steps for name in trim.STEPS}, keep_turns=keep_turns,
                                   max_result_chars=gw.settings.get("trim_max_result_chars"))
        stages.append(partial(_trim, options, record))
    setting, from_file = gw.settings.get("rewrite_rules"), gw.catalog.file.rewrite_rules
    if setting or from_file:
        rules = rewrite.rules_for(setting, from_file, models=models, key=record.key_prefix)
        request_rules = tuple(r for r in rules if r.where != "assistant")
        if request_rules:
            stages.append(partial(_rewrite, request_rules, record))
        guard = rewrite.output_guard(rules, record.note_guard)
    if gw.settings.get("prompt_redaction"):
        stages.append(partial(_redact, record))
    return tuple(stages), guard


def _trim(options: trim.TrimOptions, record: RequestRecord, form: dict, _context: StageContext) -> dict | None:
    changed, report = trim.trim(form, options)
    if changed is not None:
        record.note_guard("trimming", "trimmed", report.summary())
        record.note_trim(*trim.estimated_tokens(form, changed))
    return changed


def _rewrite(rules: tuple[rewrite.Rule, ...], record: RequestRecord, form: dict, _context: StageContext) -> dict | None:
    changed, fired = rewrite.rewrite_request(form, rules)
    if fired:
        record.note_guard("rewrite", "fired", ", ".join(fired))
    return changed


def _redact(record: RequestRecord, form: dict, _context: StageContext) -> dict | None:
    changed, found = redact.redact_request(form)
    if changed is not None:
        record.note_guard("prompt_redaction", "masked", redact.summary(found))
    return changed
