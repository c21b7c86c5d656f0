"""``python -m zengate``: serve, migrate, keys, admin, version, claude."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path

from . import __version__

ROOT = Path(__file__).resolve().parents[1]


def _open_store():
    from . import prepare_database
    from .config import Config

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
    from . import prepare_database
    from .config import Config
    from .store.migrate import applied

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
        print(f"revoked {count} key(s)")
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
    """Migrate and refuse an unsafe bind (run by gunicorn's master before workers start)."""
    from . import startup
    from .config import Config

    problem = startup.check_before_serving(Config.from_env())
    if problem:
        print(f"zengate: {problem}", file=sys.stderr)
        return 3
    return 0


def claude_environment(config, home: Path, base: dict[str, str]) -> dict[str, str]:
    """The environment that points Claude Code at this gateway (and skips its onboarding)."""
    host, _, port = config.bind.rpartition(":")
    if host in ("", "0.0.0.0", "[::]", "::"):
        host = "127.0.0.1"  # listening everywhere: talk to it on loopback
    env = dict(base)
    env["ANTHROPIC_BASE_URL"] = f"http://{host}:{port}"
    env["ANTHROPIC_AUTH_TOKEN"] = base.get("ZENGATE_API_KEY") or base.get("ANTHROPIC_AUTH_TOKEN") or "sk-zen-local"
    env.pop("ANTHROPIC_API_KEY", None)  # it would win over the token and go to the wrong place
    env.setdefault("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
    env.setdefault("DISABLE_TELEMETRY", "1")
    env.setdefault("DISABLE_AUTOUPDATER", "1")
    mark_onboarding_done(home / ".claude.json")
    return env


def mark_onboarding_done(path: Path) -> None:
    """Set ``hasCompletedOnboarding`` in Claude Code's state file, keeping everything else."""
    import json

    try:
        state = json.loads(path.read_text()) if path.exists() else {}
    except ValueError:
        return  # never clobber a file we cannot read
    if not isinstance(state, dict) or state.get("hasCompletedOnboarding") is True:
        return
    state["hasCompletedOnboarding"] = True
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(state, indent=2))


def find_claude() -> str | None:
    import shutil

    local = ROOT / ".ci" / "node" / "node_modules" / ".bin" / "claude"
    return shutil.which("claude") or (str(local) if local.exists() else None)


def cmd_claude(args: argparse.Namespace) -> int:
    """Run Claude Code against this gateway: ``python -m zengate claude -p "hi"``."""
    from .config import Config

    binary = find_claude()
    if binary is None:
        print("Claude Code is not installed: npm install -g @anthropic-ai/claude-code", file=sys.stderr)
        return 127
    env = claude_environment(Config.from_env(), Path.home(), dict(os.environ))
    os.execvpe(binary, [binary, *args.extra], env)
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
    claude = sub.add_parser("claude", help="run Claude Code against this gateway (arguments passed on)")
    claude.add_argument("extra", nargs=argparse.REMAINDER, help="arguments for claude")
    claude.set_defaults(func=cmd_claude)
    sub.add_parser("preflight", help="migrate and check the bind is safe (gunicorn runs this)").set_defaults(
        func=cmd_preflight)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)
