"""``python -m zengate``: serve, migrate, keys, admin, version, claude, codex."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from . import __version__

ROOT = Path(__file__).resolve().parents[1]


def _open_store():
    from .config import Config
    from .store.migrate import prepare_database

    config = Config.from_env()
    prepare_database(config)
    return config


def cmd_serve(args: argparse.Namespace) -> int:
    """Run gunicorn with the project's configuration (replaces this process)."""
    argv = [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"), "app:app", *args.extra]
    os.chdir(ROOT)
    os.execv(sys.executable, argv)
    return 0  # not reached


def cmd_migrate(_args: argparse.Namespace) -> int:
    from .config import Config
    from .store.migrate import applied, prepare_database

    config = Config.from_env()
    prepare_database(config)
    print("schema at:", ", ".join(applied()) or "(empty)")
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    from . import auth
    from .store.models import ApiKey

    _open_store()
    if args.keys_cmd == "create":
        new = auth.create_key(args.name or "")
        print(new.key)
        print(f"(prefix {new.record.prefix}; store the key now: it is shown only once)", file=sys.stderr)
    elif args.keys_cmd == "list":
        print(f"{'id':>4}  {'prefix':<16} {'active':<6} {'created':<20} {'last used':<20} name")
        for key in ApiKey.select().order_by(ApiKey.id):
            last = key.last_used_at.strftime("%Y-%m-%d %H:%M:%S") if key.last_used_at else "-"
            print(f"{key.id:>4}  {key.prefix:<16} {'yes' if key.active else 'no':<6} "
                  f"{key.created_at:%Y-%m-%d %H:%M:%S}  {last:<20} {key.name}")
    elif args.keys_cmd == "revoke":
        target = args.key
        count = auth.revoke_key(key_id=int(target)) if target.isdigit() else auth.revoke_key(prefix=target[:13])
        if not count:
            print(f"no key matches {target!r}", file=sys.stderr)
            return 1
        print(f"revoked {count} key(s); running gateways refuse it within ZENGATE_SETTINGS_TTL seconds")
    return 0


def cmd_admin(args: argparse.Namespace) -> int:
    from . import auth
    from .settings import Settings

    _open_store()
    password = args.password or os.environ.get("ZENGATE_NEW_ADMIN_PASSWORD")
    if not password:
        if not sys.stdin.isatty():
            password = sys.stdin.readline().rstrip("\n")
        else:
            password = getpass.getpass("new admin password: ")
            if getpass.getpass("again: ") != password:
                print("the two passwords differ", file=sys.stderr)
                return 1
    if len(password) < 8:
        print("the password must have at least 8 characters", file=sys.stderr)
        return 1
    Settings().set("admin_password_hash", auth.hash_password(password), internal=True)
    auth.close_all_sessions()
    print("admin password changed; every admin session was closed")
    return 0


def cmd_preflight(_args: argparse.Namespace) -> int:
    """Migrate and store first-start state; print what the master needs of it as one JSON line.

    gunicorn's master runs this before any worker starts and judges the line against the
    addresses it listens on (gunicorn.conf.py, ``when_ready``); exit 3 means do not serve.
    """
    from .config import Config
    from .runtime import startup

    try:
        prepared = startup.prepare(Config.from_env())
    except startup.StartupRefused as exc:
        print(f"zengate: {exc}", file=sys.stderr)
        return 3
    if prepared.admin_password.variable_ignored:
        print("zengate: ZENGATE_ADMIN_PASSWORD is not used: an admin password is already stored "
              "(change it with `python -m zengate admin set-password` or the dashboard's Account page)",
              file=sys.stderr)
    print(startup.report(prepared))
    return 0


CLAUDE_CODE_PACKAGE = "@anthropic-ai/claude-code"
CODEX_PACKAGE = "@openai/codex"
HEALTH_TIMEOUT = 2.0  # seconds GET /healthz may take before the gateway counts as unreachable
WILDCARD_HOSTS = ("", "0.0.0.0", "::", "[::]", "*")
PLACEHOLDER_KEY = "sk-zen-local"  # sent when no key is given: without require_auth the gateway does not check it
#: A project entry as Claude Code itself writes one when its folder-trust question is accepted.
CLAUDE_PROJECT_DEFAULTS = {"allowedTools": [], "mcpContextUris": [], "mcpServers": {}, "enabledMcpjsonServers": [],
                           "disabledMcpjsonServers": [], "hasClaudeMdExternalIncludesApproved": False,
                           "hasClaudeMdExternalIncludesWarningShown": False}


class LaunchError(Exception):
    """``python -m zengate claude`` (or ``codex``) cannot go on; the message says why and what to do."""


@dataclass(frozen=True)
class GatewayAddress:
    """Where the client (Claude Code, Codex) is sent, and where that address came from (said on stderr)."""

    url: str
    source: str


def gateway_address(option: str | None, environ: Mapping[str, str]) -> GatewayAddress:
    """The gateway's URL: ``--url``, else ``ZENGATE_URL``, else where the gateway is configured to listen.

    The last is read as the gateway reads it (``PORT`` before ``ZENGATE_BIND``, then the default);
    a wildcard host (``0.0.0.0``, ``[::]``) is reached on loopback.
    """
    if option and option.strip():
        return GatewayAddress(normalise_gateway_url(option, "--url"), "--url")
    if environ.get("ZENGATE_URL", "").strip():
        return GatewayAddress(normalise_gateway_url(environ["ZENGATE_URL"], "ZENGATE_URL"), "ZENGATE_URL")
    port = environ.get("PORT", "").strip()
    if port:
        return GatewayAddress(f"http://127.0.0.1:{port}", "PORT, where the gateway listens")
    bind = environ.get("ZENGATE_BIND", "").strip()
    if bind:
        return GatewayAddress(url_for_bind(bind), "ZENGATE_BIND, where the gateway listens")
    from .config import DEFAULT_BIND

    return GatewayAddress(f"http://{DEFAULT_BIND}",
                          "the default address: none of --url, ZENGATE_URL, PORT, ZENGATE_BIND is set")


def normalise_gateway_url(url: str, source: str) -> str:
    """An http(s) base URL without a trailing ``/`` or ``/v1`` (each client's own path is added to it)."""
    from urllib.parse import urlsplit

    url = url.strip().rstrip("/")
    if url.endswith("/v1"):
        url = url[: -len("/v1")]
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise LaunchError(f"{source}: {url!r} is not an http:// or https:// URL (e.g. http://127.0.0.1:8462)")
    return url


def url_for_bind(bind: str) -> str:
    """The URL that reaches a gunicorn bind address from this machine."""
    if bind.startswith("unix:"):
        raise LaunchError(f"ZENGATE_BIND is a unix socket ({bind}); the client needs an http URL: "
                          "pass --url or set ZENGATE_URL")
    host, colon, port = bind.rpartition(":")
    if not colon or "]" in port:  # "host" alone, or a bare "[::1]": gunicorn's default port
        host, port = bind, "8000"
    if host in WILDCARD_HOSTS:
        host = "127.0.0.1"  # listening everywhere: talk to it on loopback
    return f"http://{host}:{port}"


def check_gateway(url: str, timeout: float = HEALTH_TIMEOUT) -> str | None:
    """None when a zengate gateway answers ``GET <url>/healthz``; else one line saying what happened.

    A 503 from ``/healthz`` is the gateway with its database down: it still serves ``/v1``.
    """
    import json
    import urllib.error
    import urllib.request
    from urllib.parse import urlsplit

    host = urlsplit(url).hostname or ""
    local = host in ("localhost", "::1") or host.startswith("127.")
    opener = urllib.request.build_opener(*([urllib.request.ProxyHandler({})] if local else []))
    try:
        with opener.open(f"{url}/healthz", timeout=timeout) as response:
            status, body = response.status, response.read(65536)
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read(65536)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, TimeoutError) or "timed out" in str(reason):
            return f"no gateway answers at {shown_url(url)} (no answer within {timeout:g} s)"
        text = getattr(reason, "strerror", None) or str(reason)
        return f"no gateway answers at {shown_url(url)} ({text.lower()})"
    try:
        health = json.loads(body)
    except ValueError:
        health = None
    if not (isinstance(health, dict) and "status" in health and "version" in health):
        return f"{shown_url(url)}/healthz answered HTTP {status}, but not as a zengate gateway does"
    if status not in (200, 503):
        return f"the gateway at {shown_url(url)} answered /healthz with HTTP {status}"
    return None


def claude_environment(url: str, key: str | None, base: Mapping[str, str]) -> dict[str, str]:
    """The environment that points Claude Code at the gateway at ``url``, with ``key`` as its token."""
    env = dict(base)
    env["ANTHROPIC_BASE_URL"] = url
    token = key or base.get("ZENGATE_API_KEY") or base.get("ANTHROPIC_AUTH_TOKEN")
    env["ANTHROPIC_AUTH_TOKEN"] = token or PLACEHOLDER_KEY
    env.pop("ANTHROPIC_API_KEY", None)  # it would win over the token and go to the wrong place
    env.setdefault("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
    env.setdefault("DISABLE_TELEMETRY", "1")
    env.setdefault("DISABLE_AUTOUPDATER", "1")
    return env


def claude_state_file(environ: Mapping[str, str], home: Path) -> Path:
    """Claude Code's own state file: ``$CLAUDE_CONFIG_DIR/.claude.json``, else ``~/.claude.json``."""
    return Path(environ.get("CLAUDE_CONFIG_DIR") or home) / ".claude.json"


def shown_url(url: str) -> str:
    """``url`` fit for a message: a password in it (``user:pass@``) masked."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def update_claude_state(path: Path, change: Callable[[dict], bool]) -> bool:
    """Apply ``change`` to Claude Code's state file, keeping everything else; False when it cannot be read.

    ``change`` returns whether it changed anything; the file is replaced atomically, with its mode kept.
    """
    import json

    try:
        state = json.loads(path.read_text()) if path.exists() else {}
    except (OSError, ValueError):
        return False  # never clobber a file we cannot read
    if not isinstance(state, dict):
        return False
    if not change(state):
        return True
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f"{path.name}.zengate-{os.getpid()}")
    temporary.write_text(json.dumps(state, indent=2))
    if path.exists():
        os.chmod(temporary, path.stat().st_mode & 0o7777)
    os.replace(temporary, path)
    return True


def mark_onboarding_done(state: dict) -> bool:
    """Set ``hasCompletedOnboarding``, so Claude Code skips its first-run screens and login."""
    if state.get("hasCompletedOnboarding") is True:
        return False
    state["hasCompletedOnboarding"] = True
    return True


def trust_folder(folder: str) -> Callable[[dict], bool]:
    """A change marking ``folder`` (and no other) as trusted: Claude Code then skips its folder-trust question."""
    def change(state: dict) -> bool:
        projects = state.get("projects")
        if projects is None:
            projects = state["projects"] = {}
        if not isinstance(projects, dict):
            return False
        entry = projects.get(folder)
        if isinstance(entry, dict) and entry.get("hasTrustDialogAccepted") is True:
            return False
        projects[folder] = {**(entry if isinstance(entry, dict) else CLAUDE_PROJECT_DEFAULTS),
                            "hasTrustDialogAccepted": True}
        return True
    return change


@dataclass(frozen=True)
class ClientCli:
    """A command-line client zengate starts: its name for messages, its binary and its npm package."""

    product: str  # "Claude Code"
    binary: str  # "claude"
    package: str  # "@anthropic-ai/claude-code"

    @property
    def install_command(self) -> str:
        return f"npm install -g {self.package}"


CLAUDE_CODE = ClientCli("Claude Code", "claude", CLAUDE_CODE_PACKAGE)
CODEX = ClientCli("Codex", "codex", CODEX_PACKAGE)


def find_cli(client: ClientCli) -> str | None:
    """The client's binary on PATH, else the copy ``bash .ci/install --dev`` puts in ``.ci/node``."""
    import shutil

    local = ROOT / ".ci" / "node" / "node_modules" / ".bin" / client.binary
    return shutil.which(client.binary) or (str(local) if local.exists() else None)


def install_cli(client: ClientCli) -> tuple[str | None, int]:
    """Say the command that installs the client and, on a terminal, offer to run it.

    Returns the installed binary, or None and the exit code to end with.
    """
    import shutil
    import subprocess

    print(f"zengate: {client.product} is not installed. Install it with: {client.install_command}", file=sys.stderr)
    if not (sys.stdin and sys.stdin.isatty()):
        return None, 127
    print("Install it now with npm? [y/N] ", end="", file=sys.stderr, flush=True)
    if sys.stdin.readline().strip().lower() not in ("y", "yes"):
        return None, 127
    npm = shutil.which("npm")
    if npm is None:
        print("zengate: npm is not installed: install Node.js (it brings npm), then run the command above",
              file=sys.stderr)
        return None, 127
    done = subprocess.run([npm, "install", "-g", client.package], check=False)
    if done.returncode != 0:
        print(f"zengate: `{client.install_command}` failed (exit {done.returncode})", file=sys.stderr)
        return None, done.returncode
    binary = find_cli(client)
    if binary is None:
        print(f"zengate: {client.product} was installed, but `{client.binary}` is not on PATH: add npm's global "
              "bin folder (`npm prefix -g`/bin) to PATH", file=sys.stderr)
        return None, 127
    return binary, 0


def find_gateway(client: ClientCli, url_option: str | None) -> tuple[GatewayAddress | None, int]:
    """:func:`gateway_address` for ``client``, said on stderr; None and exit code 2 when it cannot be used."""
    try:
        address = gateway_address(url_option, os.environ)
    except LaunchError as exc:
        print(f"zengate: {exc}", file=sys.stderr)
        return None, 2
    print(f"zengate: {client.product} will use the gateway at {shown_url(address.url)} (from {address.source})",
          file=sys.stderr)
    return address, 0


def reach_gateway(client: ClientCli, url_option: str | None) -> tuple[GatewayAddress | None, int]:
    """Find the gateway, say on stderr which one the client will use and why, and check that it answers.

    Returns the address, or None and the exit code to end with (the reason is already said).
    """
    address, code = find_gateway(client, url_option)
    if address is None:
        return None, code
    problem = check_gateway(address.url)
    if problem:
        print(f"zengate: {problem}.\n"
              "Start the gateway (`.venv/bin/python -m zengate serve` in its folder), or point at the one you run "
              "with --url URL or ZENGATE_URL=URL.", file=sys.stderr)
        return None, 1
    return address, 0


def client_binary(client: ClientCli) -> tuple[str | None, int]:
    """The client's binary, installed first when the person at the terminal says so; else None and an exit code."""
    binary = find_cli(client)
    if binary is not None:
        return binary, 0
    return install_cli(client)


def cmd_claude(args: argparse.Namespace) -> int:
    """Run Claude Code against a running gateway: ``python -m zengate claude -p "hi"``.

    Says on stderr which gateway it uses and why, checks that it answers, installs Claude Code
    when asked to, skips Claude Code's onboarding, and with ``--trust-this-folder`` its folder-trust
    question for the current folder; then replaces this process with ``claude``.
    """
    address, code = reach_gateway(CLAUDE_CODE, args.url)
    if address is None:
        return code
    binary, code = client_binary(CLAUDE_CODE)
    if binary is None:
        return code
    env = claude_environment(address.url, args.key, os.environ)
    state = claude_state_file(env, Path.home())
    if not update_claude_state(state, mark_onboarding_done):
        print(f"zengate: could not read {state}: Claude Code may show its first-run screens", file=sys.stderr)
    if args.trust_this_folder:
        folder = os.getcwd()
        if update_claude_state(state, trust_folder(folder)):
            print(f"zengate: marked {folder} as trusted in {state}", file=sys.stderr)
        else:
            print(f"zengate: could not read {state}: Claude Code will ask whether to trust {folder}",
                  file=sys.stderr)
    os.execvpe(binary, [binary, *args.extra], env)
    return 0  # not reached


# --------------------------------------------------------------------------- python -m zengate codex

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
    address, code = reach_gateway(CODEX, args.url)
    if address is None:
        return code
    binary, code = client_binary(CODEX)
    if binary is None:
        return code
    user_config = read_codex_config(codex_config_file(os.environ, Path.home()))
    argv = [binary, *codex_overrides(address.url, args.model, user_config), *args.extra]
    os.execvpe(binary, argv, codex_environment(args.key, os.environ))
    return 0  # not reached


def cmd_version(_args: argparse.Namespace) -> int:
    print(f"zengate {__version__}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m zengate", description="zengate — a gateway to OpenCode Zen")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the gateway (gunicorn, gevent workers)")
    serve.add_argument("extra", nargs=argparse.REMAINDER, help="extra gunicorn arguments")
    serve.set_defaults(func=cmd_serve)

    sub.add_parser("migrate", help="apply database migrations").set_defaults(func=cmd_migrate)

    keys = sub.add_parser("keys", help="manage sk-zen API keys")
    keys_sub = keys.add_subparsers(dest="keys_cmd", required=True)
    create = keys_sub.add_parser("create", help="create a key (printed once)")
    create.add_argument("--name", default="")
    keys_sub.add_parser("list", help="list keys (prefixes only)")
    revoke = keys_sub.add_parser("revoke", help="revoke a key by id or prefix")
    revoke.add_argument("key", help="key id, prefix or the whole key")
    keys.set_defaults(func=cmd_keys)

    admin = sub.add_parser("admin", help="admin account")
    admin_sub = admin.add_subparsers(dest="admin_cmd", required=True)
    setpw = admin_sub.add_parser("set-password", help="set the admin password")
    setpw.add_argument("--password", help="the new password (else prompted, or read from stdin)")
    admin.set_defaults(func=cmd_admin)

    sub.add_parser("version", help="print the version").set_defaults(func=cmd_version)
    claude = sub.add_parser(
        "claude", help="run Claude Code against a running gateway (arguments passed on)",
        usage="python -m zengate claude [--url URL] [--key KEY] [--trust-this-folder] [claude arguments...]",
        description="Run Claude Code (`claude`) against a running gateway. The gateway is found at --url, else "
                    "$ZENGATE_URL, else where the gateway is configured to listen ($PORT on 127.0.0.1, "
                    "$ZENGATE_BIND, or 127.0.0.1:8462); the address used and where it came from are printed "
                    "first, and GET /healthz must answer. The key is --key, else $ZENGATE_API_KEY. Every "
                    "argument after these options (or after --) goes to claude.")
    claude.add_argument("--url", help="the gateway's base URL, e.g. http://127.0.0.1:8462 (default: $ZENGATE_URL)")
    claude.add_argument("--key", help="the sk-zen key to send (default: $ZENGATE_API_KEY)")
    claude.add_argument("--trust-this-folder", action="store_true",
                        help="answer Claude Code's folder-trust question with yes for the current folder only "
                             "(written to ~/.claude.json), so it opens straight to the prompt")
    claude.add_argument("extra", nargs=argparse.REMAINDER, help="arguments for claude")
    claude.set_defaults(func=cmd_claude)
    codex = sub.add_parser(
        "codex", help="run the Codex CLI against a running gateway (arguments passed on)",
        usage="python -m zengate codex [--url URL] [--key KEY] [--model MODEL] [--print-config] [codex arguments...]",
        description="Run the Codex CLI (`codex`) against a running gateway, found as for `claude`: --url, else "
                    "$ZENGATE_URL, else where the gateway is configured to listen; the address used and where it "
                    "came from are printed first, and GET /healthz must answer. The gateway is given to Codex as "
                    f"the provider `{CODEX_PROVIDER}` by -c overrides (your config.toml is never written); the key "
                    f"is --key, else ${CODEX_KEY_VARIABLE}. Every argument after these options (or after --) goes "
                    "to codex, e.g. `exec \"say hi\"`.")
    codex.add_argument("--url", help="the gateway's base URL, e.g. http://127.0.0.1:8462 (default: $ZENGATE_URL)")
    codex.add_argument("--key", help=f"the sk-zen key to send (default: ${CODEX_KEY_VARIABLE})")
    codex.add_argument("--model", default=CODEX_DEFAULT_MODEL,
                       help=f"the model Codex asks the gateway for (default: {CODEX_DEFAULT_MODEL})")
    codex.add_argument("--print-config", action="store_true",
                       help="print the provider as TOML (a profile file for `codex --profile zengate`) and exit")
    codex.add_argument("extra", nargs=argparse.REMAINDER, help="arguments for codex")
    codex.set_defaults(func=cmd_codex)
    sub.add_parser("preflight", help="migrate and report the first-start state (gunicorn runs this)").set_defaults(
        func=cmd_preflight)
    return parser


#: Verbs that pass arguments on (to gunicorn, claude, codex), with their own leading options (True: takes a value).
PASS_ON = {"serve": {"-h": False, "--help": False},
           "claude": {"-h": False, "--help": False, "--url": True, "--key": True, "--trust-this-folder": False},
           "codex": {"-h": False, "--help": False, "--url": True, "--key": True, "--model": True,
                     "--print-config": False}}


def split_arguments(verb: str, args: list[str]) -> tuple[list[str], list[str]]:
    """A pass-on verb's own leading options, and the rest (after the first other argument, or ``--``) to pass on."""
    options = PASS_ON[verb]
    ours: list[str] = []
    i = 0
    while i < len(args):
        if args[i] == "--":
            return ours, args[i + 1:]
        name, equals, _ = args[i].partition("=")
        if name not in options:
            break
        step = 2 if options[name] and not equals else 1
        ours += args[i:i + step]
        i += step
    return ours, args[i:]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    if argv and argv[0] in PASS_ON:
        ours, theirs = split_arguments(argv[0], argv[1:])
        args = parser.parse_args([argv[0], *ours])
        args.extra = theirs
    else:
        args = parser.parse_args(argv)
    return args.func(args)
