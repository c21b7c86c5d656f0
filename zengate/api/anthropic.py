"""The Anthropic Messages surface: ``/v1/messages`` and ``/v1/messages/count_tokens``."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("anthropic", __name__)
