"""The APIs zengate speaks, one dialect each, converting to and from the internal form of an
exchange (``zengate.exchange.form``): pure functions, no Flask, no I/O.

``base.py`` says what a dialect is, ``registry.py`` names them; ``openai/`` (Chat Completions),
``anthropic/`` (Messages) and ``responses*.py`` (OpenAI Responses) are the dialects; ``sse.py``,
``tokens.py`` and ``translate_common.py`` are what they share.
"""
