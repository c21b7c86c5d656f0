"""``python -m zengate``: serve, migrate, keys, admin, version, claude, codex, gemini, replay."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Callable
from pathlib import Path

from . import __version__
from .launch.claude import cmd_claude
from .launch.codex import CODEX_DEFAULT_MODEL, CODEX_KEY_VARIABLE, CODEX_PROVIDER, cmd_codex
from .launch.gemini import cmd_gemini
from .launch.replay import cmd_replay

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


def cmd_version(_args: argparse.Namespace) -> int:
    print(f"zengate {__version__}")
    return 0


def client_verb(sub, name: str, product: str, func: Callable[[argparse.Namespace], int], *, usage: str,
                description: str, key_variable: str = "ZENGATE_API_KEY") -> argparse.ArgumentParser:
    """A verb that runs a client CLI against the gateway: its --url and --key, and the arguments passed on."""
    verb = sub.add_parser(name, help=f"run {product} against a running gateway (arguments passed on)", usage=usage,
                          description=description)
    verb.add_argument("--url", help="the gateway's base URL, e.g. http://127.0.0.1:8462 (default: $ZENGATE_URL)")
    verb.add_argument("--key", help=f"the sk-zen key to send (default: ${key_variable})")
    verb.add_argument("extra", nargs=argparse.REMAINDER, help=f"arguments for {name}")
    verb.set_defaults(func=func)
    return verb


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
    claude = client_verb(
        sub, "claude", "Claude Code", cmd_claude,
        usage="python -m zengate claude [--url URL] [--key KEY] [--trust-this-folder] [claude arguments...]",
        description="Run Claude Code (`claude`) against a running gateway. The gateway is found at --url, else "
                    "$ZENGATE_URL, else where the gateway is configured to listen ($PORT on 127.0.0.1, "
                    "$ZENGATE_BIND, or 127.0.0.1:8462); the address used and where it came from are printed "
                    "first, and GET /healthz must answer. The key is --key, else $ZENGATE_API_KEY. Every "
                    "argument after these options (or after --) goes to claude.")
    claude.add_argument("--trust-this-folder", action="store_true",
                        help="answer Claude Code's folder-trust question with yes for the current folder only "
                             "(written to ~/.claude.json), so it opens straight to the prompt")
    codex = client_verb(
        sub, "codex", "the Codex CLI", cmd_codex, key_variable=CODEX_KEY_VARIABLE,
        usage="python -m zengate codex [--url URL] [--key KEY] [--model MODEL] [--print-config] [codex arguments...]",
        description="Run the Codex CLI (`codex`) against a running gateway, found as for `claude`: --url, else "
                    "$ZENGATE_URL, else where the gateway is configured to listen; the address used and where it "
                    "came from are printed first, and GET /healthz must answer. The gateway is given to Codex as "
                    f"the provider `{CODEX_PROVIDER}` by -c overrides (your config.toml is never written); the key "
                    f"is --key, else ${CODEX_KEY_VARIABLE}. Every argument after these options (or after --) goes "
                    "to codex, e.g. `exec \"say hi\"`.")
    codex.add_argument("--model", default=CODEX_DEFAULT_MODEL,
                       help=f"the model Codex asks the gateway for (default: {CODEX_DEFAULT_MODEL})")
    codex.add_argument("--print-config", action="store_true",
                       help="print the provider as TOML (a profile file for `codex --profile zengate`) and exit")
    gemini = client_verb(
        sub, "gemini", "Gemini CLI", cmd_gemini,
        usage="python -m zengate gemini [--url URL] [--key KEY] [--trust-this-folder] [--switch-auth] "
              "[gemini arguments...]",
        description="Run Gemini CLI (`gemini`) against a running gateway, found as for `claude`: --url, else "
                    "$ZENGATE_URL, else where the gateway is configured to listen; the address used and where it "
                    "came from are printed first, and GET /healthz must answer. Gemini CLI must sign in with "
                    "an API key for the gateway to get its requests: that is selected in ~/.gemini/settings.json "
                    "when no sign-in is, and replaces another only with --switch-auth. The key is --key, else "
                    "$ZENGATE_API_KEY. Every argument after these options (or after --) goes to gemini, e.g. "
                    "`-p \"say hi\"`.")
    gemini.add_argument("--trust-this-folder", action="store_true",
                        help="trust the current folder for this run only (Gemini CLI refuses to run headless "
                             "in a folder it does not trust)")
    gemini.add_argument("--switch-auth", action="store_true",
                        help="select the API-key sign-in in ~/.gemini/settings.json even when another (a Google "
                             "account) is selected there; /auth in Gemini CLI switches back")
    replay = sub.add_parser(
        "replay", help="send a wire-captured request to the gateway again",
        usage="python -m zengate replay FILE [--line N | --request-id ID] [--url URL] [--key KEY]",
        description="Send a client request from a wire-capture file (the wire_capture setting; download the files "
                    "from the dashboard or GET /_admin/capture) to a running gateway again, and print the status "
                    "and the answer as it comes. The line is --line N or --request-id ID, else the last one. The "
                    "gateway is found as for `claude`; the capture masked the client's key, so --key (else "
                    "$ZENGATE_API_KEY) is sent in its place.")
    replay.add_argument("file", help="a capture-*.jsonl file")
    which = replay.add_mutually_exclusive_group()
    which.add_argument("--line", type=int, help="the line's number in the file (1 is the first)")
    which.add_argument("--request-id", help="the request id of the line to replay (req_…)")
    replay.add_argument("--url", help="the gateway's base URL, e.g. http://127.0.0.1:8462 (default: $ZENGATE_URL)")
    replay.add_argument("--key", help="the sk-zen key to send (default: $ZENGATE_API_KEY)")
    replay.set_defaults(func=cmd_replay)
    sub.add_parser("preflight", help="migrate and report the first-start state (gunicorn runs this)").set_defaults(
        func=cmd_preflight)
    return parser


#: Verbs that pass arguments on (to gunicorn and the client CLIs), with their own leading options (True: takes a value).
PASS_ON = {"serve": {"-h": False, "--help": False},
           "claude": {"-h": False, "--help": False, "--url": True, "--key": True, "--trust-this-folder": False},
           "codex": {"-h": False, "--help": False, "--url": True, "--key": True, "--model": True,
                     "--print-config": False},
           "gemini": {"-h": False, "--help": False, "--url": True, "--key": True, "--trust-this-folder": False,
                      "--switch-auth": False}}


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
