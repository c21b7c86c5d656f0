"""Whether the gateway listens beyond loopback, judged from the sockets gunicorn really opened.

gunicorn's bind can come from ``ZENGATE_BIND``/``PORT`` (gunicorn.conf.py), ``GUNICORN_CMD_ARGS``,
``-b`` on the command line or sockets handed over by systemd; only the listeners tell the truth.
Two rules follow from them: the default admin password is refused beyond loopback (the master,
at ``when_ready``), and ``/v1`` then needs an ``sk-zen`` key unless the operator opened it on
purpose with ``ZENGATE_ALLOW_PUBLIC_WITHOUT_KEYS`` (each worker, from its own listeners).

Pure functions of addresses: no database, so the gunicorn master may import this module.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

ALLOW_VARIABLE = "ZENGATE_ALLOW_PUBLIC_WITHOUT_KEYS"
SET_PASSWORD_COMMAND = "python -m zengate admin set-password"


def socket_address(sock: Any) -> str:
    """``host:port`` (``[v6]:port``) or ``unix:path`` of a listening socket (or gunicorn's wrapper of one)."""
    sock = getattr(sock, "sock", sock)
    name = sock.getsockname()
    if getattr(socket, "AF_UNIX", None) is not None and sock.family == socket.AF_UNIX:
        return "unix:" + (name.decode(errors="replace") if isinstance(name, bytes) else str(name))
    host, port = name[0], name[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def configured_address(address: Any) -> str:
    """One entry of gunicorn's ``cfg.address`` (a ``(host, port)`` pair or a unix path) as text."""
    if isinstance(address, tuple):
        host, port = address[0], address[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return f"unix:{address}"


def is_loopback(address: str) -> bool:
    """True for a unix socket and for addresses only this machine can reach (127/8, ::1, localhost)."""
    if address.startswith(("unix:", "fd://")):
        return True
    host = address.rsplit(":", 1)[0] if ":" in address else address
    host = host.strip("[]").split("%", 1)[0]
    if host == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False  # a host name: it may resolve to anything
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback


def beyond_loopback(addresses: Iterable[str]) -> bool:
    """Whether any of the addresses can be reached from another machine."""
    return any(not is_loopback(a) for a in addresses)


@dataclass(frozen=True)
class Access:
    """Who may use ``/v1`` without a key, given where the gateway listens (judged once, read per request)."""

    listening: tuple[str, ...]
    public: bool  # some address is reachable from another machine
    keys_required: bool  # beyond loopback and not opened on purpose (``require_auth`` adds to this)
    open_to_the_network: bool  # beyond loopback with keys deliberately not required: warn everywhere

    @classmethod
    def of(cls, listening: Iterable[str], allow_public_without_keys: bool = False) -> Access:
        listening = tuple(listening)
        public = beyond_loopback(listening)
        return cls(listening, public, public and not allow_public_without_keys, public and allow_public_without_keys)

    def describe(self) -> dict[str, Any]:
        return {"listening": list(self.listening), "beyond_loopback": self.public,
                "keys_required_by_bind": self.keys_required, "open_without_keys": self.open_to_the_network}


def password_refusal(access: Access, *, default_password: bool, stored_earlier: bool) -> str | None:
    """Why serving would be unsafe (the default admin password reachable from the network), or None.

    ``stored_earlier``: the default password's hash was stored by an earlier start, so the command
    that sets the password is the first remedy named (the variable only replaces a stored default).
    """
    if not default_password or not access.public:
        return None
    where = ", ".join(a for a in access.listening if not is_loopback(a))
    if stored_earlier:
        remedy = (f"Run `{SET_PASSWORD_COMMAND}` (or set ZENGATE_ADMIN_PASSWORD, at least 8 characters, which "
                  "replaces a stored default password at the next start)")
    else:
        remedy = f"Set ZENGATE_ADMIN_PASSWORD (at least 8 characters) or run `{SET_PASSWORD_COMMAND}`"
    return (f"refusing to listen on {where}: the admin password is still the default 'admin'. {remedy}, "
            "or listen on loopback only (ZENGATE_BIND=127.0.0.1:8462).")


def start_message(access: Access, *, require_auth: bool = False) -> tuple[str, str] | None:
    """The line the master logs at start about who can use ``/v1``: ``(level, text)``, or None on loopback."""
    where = ", ".join(access.listening)
    if access.open_to_the_network and not require_auth:
        return ("warning", f"listening beyond loopback ({where}) WITHOUT requiring API keys ({ALLOW_VARIABLE} is "
                           "set): anyone who can reach this address spends your upstream keys")
    if access.public:
        opened = (f"{ALLOW_VARIABLE} is set but the require_auth setting is on" if access.open_to_the_network
                  else f"{ALLOW_VARIABLE}=1 opens it to everyone")
        return ("info", f"listening beyond loopback ({where}): /v1 calls need an sk-zen key "
                        f"(create one: python -m zengate keys create); {opened}")
    return None
