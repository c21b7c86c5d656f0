"""The pinned npm CLIs the end-to-end tests drive (Codex, Gemini CLI), in ``.ci/node``.

``bash .ci/install --dev`` puts them there; :func:`pinned_cli` installs one there when it is
missing (one installer at a time), and checks that the binary found is the pinned version.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NODE_PREFIX = ROOT / ".ci" / "node"


class CliUnavailable(Exception):
    """A pinned CLI is not installed and could not be installed; the message says why."""


def pinned_cli(package: str, version: str, binary: str, install: bool = True) -> str:
    """The path of ``binary`` from ``package@version`` in ``.ci/node``, installed there with npm when missing.

    Raises :class:`CliUnavailable` when it is missing and npm is absent or fails (an offline
    machine), and AssertionError when the binary there is not the pinned version.
    """
    path = NODE_PREFIX / "node_modules" / ".bin" / binary
    spec = f"{package}@{version}"
    if not path.exists() and install:
        npm = shutil.which("npm")
        if npm is None:
            raise CliUnavailable(f"{binary} is not in {NODE_PREFIX} and npm is not installed to put it there "
                                 "(bash .ci/install --dev)")
        NODE_PREFIX.mkdir(parents=True, exist_ok=True)
        with open(NODE_PREFIX / ".install.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not path.exists():
                done = subprocess.run([npm, "install", "--prefix", str(NODE_PREFIX), "--no-audit", "--no-fund",
                                       "--save-exact", spec], cwd=ROOT, capture_output=True, text=True, timeout=600)
                if done.returncode != 0:
                    raise CliUnavailable(f"npm install {spec} failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    if not path.exists():
        raise CliUnavailable(f"no {path} (bash .ci/install --dev installs {spec})")
    with tempfile.TemporaryDirectory(prefix=f"{binary}-version-") as home:  # CLIs make folders in $HOME
        shown = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=60,
                               env={"PATH": os.environ.get("PATH", os.defpath), "HOME": home})
    assert shown.returncode == 0, f"{path} --version failed: {shown.stderr[-2000:]}"
    assert shown.stdout.split()[-1:] == [version], (
        f"{path} is {shown.stdout.strip()!r}, not {version}: npm install --prefix .ci/node --save-exact {spec}")
    return str(path)


def isolated_environment(home: Path, tmp: Path) -> dict[str, str]:
    """The start of a CLI run's environment, built from scratch: only PATH comes from this process
    (no key, proxy or vendor variable leaks in), with its own HOME and TMPDIR, bash, and UTF-8."""
    return {"PATH": os.environ.get("PATH", os.defpath), "HOME": str(home), "TMPDIR": str(tmp),
            "SHELL": shutil.which("bash") or "/bin/bash", "LANG": "C.UTF-8"}
