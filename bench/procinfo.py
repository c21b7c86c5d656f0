"""Process facts from /proc: a gunicorn master's workers, and memory as RSS, PSS and USS.

RSS counts every resident page the process maps (shared libraries included); PSS shares each
shared page out between the processes that map it; USS is the process's private pages only
(``Private_Clean + Private_Dirty``), what it would give back if it exited.
"""

from __future__ import annotations

import os
from pathlib import Path


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (a gunicorn master's workers, plus any helper it spawned)."""
    found: list[int] = []
    task_dir = Path(f"/proc/{pid}/task")
    for task in task_dir.iterdir() if task_dir.exists() else ():
        try:
            found += [int(x) for x in (task / "children").read_text().split()]
        except OSError:
            continue
    return sorted(set(found))


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def memory_kb(pid: int) -> dict[str, int]:
    """``{"rss", "pss", "uss"}`` in KiB (smaps_rollup; RSS alone from status when that is missing)."""
    result: dict[str, int] = {}
    try:
        fields = {}
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
            name, _, rest = line.partition(":")
            parts = rest.split()
            if parts and parts[0].isdigit():
                fields[name.strip()] = int(parts[0])
        result = {"rss": fields.get("Rss", 0), "pss": fields.get("Pss", 0),
                  "uss": fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)}
    except OSError:
        pass
    if not result.get("rss"):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                result["rss"] = int(line.split()[1])
    return result


def open_fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def system_busy_seconds() -> float:
    """CPU time all CPUs have spent busy since boot (everything but idle and iowait)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pids: list[int]) -> float:
    """CPU time used so far by these live processes (missing ones count 0)."""
    total = 0.0
    for pid in pids:
        try:
            total += cpu_seconds(pid)
        except (OSError, IndexError, ValueError):
            continue
    return total


def client_connections(pids: list[int], port: int) -> dict[int, int]:
    """How many established TCP connections to local ``port`` each of ``pids`` holds.

    Sockets are matched by inode: ``/proc/net/tcp`` (and ``tcp6``) gives each connection's local
    port, state and inode; ``/proc/PID/fd`` gives the inodes a process holds. A gunicorn worker's
    accepted client connections are the ones on the listening port; its upstream connections are
    on the upstream's port and are not counted.
    """
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and fields[3] == "01":  # 01: ESTABLISHED
                inodes.add(fields[9])
    held: dict[int, int] = {}
    for pid in pids:
        count = 0
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                except OSError:
                    continue
                if target.startswith("socket:[") and target[8:-1] in inodes:
                    count += 1
        except OSError:
            count = -1
        held[pid] = count
    return held
