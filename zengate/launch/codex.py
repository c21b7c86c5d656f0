"""``python -m zengate codex``: the Codex CLI given the gateway as its provider by ``-c``
overrides (the user's config.toml is read, never written), or that provider printed as TOML."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from .common import PLACEHOLDER_KEY, ClientCli, find_gateway, ready

CODEX_PACKAGE = "@openai/codex"
CODEX = ClientCli("Codex", "codex", CODEX_PACKAGE)
CODEX_PROVIDER = "zengate"  # the model_providers entry that points Codex at the gateway
CODEX_KEY_VARIABLE = "ZENGATE_API_KEY"  # the entry's env_key: Codex sends its value as the Bearer token
CODEX_DEFAULT_MODEL = "gpt-5-nano"  # a model the gateway serves over the Responses API


def codex_provider(url: str) -> dict[str, str]:
    """The ``model_providers.zengate`` entry for the gateway at ``url``.

    Codex posts to ``{base_url}/responses`` (always streaming), with ``Authorization: Bearer`` and
    the value of the variable ``env_key`` names; ``wire_api = "responses"`` is the only API it speaks.
    """
    return {"name": "zengate", "base_url": f"{url}/v1", "env_key": CODEX_KEY_VARIABLE, "wire_api": "responses"}


def toml_string(text: str) -> str:
    """``text`` as a TOML basic string: a JSON string is one (the same escapes), and ASCII-only here."""
    import json

    return json.dumps(text)


def codex_config_file(environ: Mapping[str, str], home: Path) -> Path:
    """Codex's own config file: ``$CODEX_HOME/config.toml``, else ``~/.codex/config.toml``."""
    return Path(environ.get("CODEX_HOME") or home / ".codex") / "config.toml"


def read_codex_config(path: Path) -> dict:
    """The user's Codex config, or ``{}`` when there is none or it is not TOML (Codex itself then says why)."""
    import tomllib

    try:
        return tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return {}


def codex_overrides(url: str, model: str, user_config: Mapping) -> list[str]:
    """Codex ``-c key=value`` arguments that select the gateway as provider and ``model`` for this run.

    Nothing is written: the rest of the user's config (and any ``model_providers.zengate`` keys of
    their own, such as ``http_headers``) still applies. Codex's analytics would go to OpenAI, not to
    the gateway: they are turned off unless the user's config sets ``[analytics] enabled`` itself.
    """
    settings = {"model_provider": CODEX_PROVIDER, "model": model,
                **{f"model_providers.{CODEX_PROVIDER}.{k}": v for k, v in codex_provider(url).items()}}
    argv: list[str] = []
    for key, value in settings.items():
        argv += ["-c", f"{key}={toml_string(value)}"]
    analytics = user_config.get("analytics")
    if not (isinstance(analytics, dict) and "enabled" in analytics):
        argv += ["-c", "analytics.enabled=false"]
    return argv


def codex_environment(key: str | None, base: Mapping[str, str]) -> dict[str, str]:
    """The environment Codex runs in: ``key`` (else ``ZENGATE_API_KEY``, else a placeholder) in ``ZENGATE_API_KEY``."""
    env = dict(base)
    env[CODEX_KEY_VARIABLE] = key or base.get(CODEX_KEY_VARIABLE) or PLACEHOLDER_KEY
    return env


def codex_config_text(url: str, model: str) -> str:
    """The gateway as Codex's provider, as TOML: a whole profile file, or the lines to add to config.toml."""
    lines = [f"model = {toml_string(model)}", f"model_provider = {toml_string(CODEX_PROVIDER)}", "",
             f"[model_providers.{CODEX_PROVIDER}]"]
    lines += [f"{key} = {toml_string(value)}" for key, value in codex_provider(url).items()]
    return "\n".join(lines) + "\n"


def cmd_codex(args: argparse.Namespace) -> int:
    """Run the Codex CLI against a running gateway: ``python -m zengate codex exec "hi"``.

    Says on stderr which gateway it uses and why, checks that it answers, installs Codex when asked
    to, then replaces this process with ``codex``, given the gateway as its provider by ``-c``
    overrides (the user's config.toml is read, never written) and the key in ``ZENGATE_API_KEY``.
    ``--print-config`` prints that provider as TOML instead, for a permanent set-up.
    """
    if args.print_config:
        if args.extra:
            print(f"zengate: --print-config runs nothing; remove {' '.join(args.extra)!r}", file=sys.stderr)
            return 2
        address, code = find_gateway(CODEX, args.url)
        if address is None:
            return code
        print(codex_config_text(address.url, args.model), end="")
        profile = codex_config_file(os.environ, Path.home()).with_name(f"{CODEX_PROVIDER}.config.toml")
        print(f"zengate: save this as {profile} and run `codex --profile {CODEX_PROVIDER}` with "
              f"{CODEX_KEY_VARIABLE} set, or add its lines to config.toml (the first two above its first [table])",
              file=sys.stderr)
        return 0
    found = ready(CODEX, args.url)
    if isinstance(found, int):
        return found
    url, binary = found
    user_config = read_codex_config(codex_config_file(os.environ, Path.home()))
    argv = [binary, *codex_overrides(url, args.model, user_config), *args.extra]
    os.execvpe(binary, argv, codex_environment(args.key, os.environ))
    return 0  # not reached

