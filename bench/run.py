"""zengate benchmark: the same fast local upstream reached directly and through zengate, in one run.

    .venv/bin/python bench/run.py            # full run, about 4-5 minutes (more with --wait-quiet)
    .venv/bin/python bench/run.py --quick    # smoke run, about 1 minute

Starts ``bench/upstream.py`` (asyncio, pinned to one CPU), zengate exactly as production runs it
(``gunicorn -c gunicorn.conf.py app:app``: gevent workers, default worker count and settings,
request log on, SQLite in a temporary directory), and drives both with ``wrk`` (non-streaming
requests/s and latency) and ``bench/streams.py`` (streams: time to first token, total time,
1,000 streams held open). Prints a table and writes ``bench/results/latest.json``.
See bench/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import resource
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from contextlib import ExitStack
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import procinfo  # noqa: E402
import report  # noqa: E402

DEFAULT_REPO = BENCH.parent
MODEL = "big-pickle"  # a model whose upstream speaks OpenAI (so /v1/messages is translated)
RESPONSES_MODEL = "gpt-5-nano"  # a model whose upstream speaks OpenAI Responses (/responses)
HOLD_MODEL = "bench-hold"  # the upstream holds these streams open until released
PROMPT = [{"role": "user", "content": "Say hello in one short sentence."}]
SYSTEM = "You are a terse assistant."

OPENAI_BODY = {"model": MODEL, "max_tokens": 256,
               "messages": [{"role": "system", "content": SYSTEM}, *PROMPT]}
ANTHROPIC_BODY = {"model": MODEL, "max_tokens": 256, "system": SYSTEM, "messages": PROMPT}
# A Responses client's request: for MODEL (translated to chat) and for RESPONSES_MODEL (passed through)
RESPONSES_BODY = {"model": MODEL, "max_output_tokens": 256, "instructions": SYSTEM, "input": PROMPT}
RESPONSES_UP_BODY = {**RESPONSES_BODY, "model": RESPONSES_MODEL}
RESPONSES_CONCURRENCY = 1  # the Responses rows are measured at c=1 only, to keep the run short
ERROR_LINE = re.compile(r"\[(?:ERROR|CRITICAL)\]| (?:ERROR|CRITICAL) |^\w+Error: ")
ANTHROPIC_HEADERS = ["anthropic-version: 2023-06-01", "x-api-key: sk-bench-unused"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def http(method: str, url: str, body: bytes | None = None, headers: dict | None = None,
         timeout: float = 10.0) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_until(predicate, timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except OSError as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(interval)  # polling a start-up condition, bounded by the deadline
    raise RuntimeError(f"{what}: not ready within {timeout}s (last: {last!r})")


# --- the processes under test ---------------------------------------------------------------

class Upstream:
    def __init__(self, workdir: Path, cpu: int | None, chunks: int, interval_ms: float, hold_max: float):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "upstream.log"
        argv = [sys.executable, str(BENCH / "upstream.py"), "--port", str(self.port), "--chunks", str(chunks),
                "--interval-ms", str(interval_ms), "--hold-max", str(hold_max)]
        if cpu is not None:
            argv += ["--cpu", str(cpu)]
        self._log = open(self.log_path, "wb")  # closed in stop()
        self.process = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT)
        wait_until(lambda: b"READY" in self.log_path.read_bytes() or self._died(), 15, "bench upstream")
        self._died()

    def _died(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"bench upstream exited:\n{self.log_path.read_text(errors='replace')}")
        return False

    def stats(self) -> dict:
        return json.loads(http("GET", self.url + "/_bench/stats")[1])

    def release(self) -> None:
        http("POST", self.url + "/_bench/release", b"")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


#: A gunicorn config for bench tools: the repo's ``gunicorn.conf.py``, then the tool's
#: ``_bench_hooks(worker)`` in each worker after the repo's own ``post_worker_init``.
_WRAPPED_CONF = """
import os
_conf = os.path.join(os.getcwd(), "gunicorn.conf.py")
exec(compile(open(_conf).read(), _conf, "exec"))
_repo_post_worker_init = post_worker_init


def post_worker_init(worker):
    _repo_post_worker_init(worker)
    _bench_hooks(worker)

"""


def wrapped_gunicorn_conf(hooks: str) -> str:
    """The text of a gunicorn config running the repo's, plus ``hooks`` (which define ``_bench_hooks(worker)``)."""
    return _WRAPPED_CONF + hooks


class Gateway:
    """``gunicorn -c gunicorn.conf.py app:app`` from the repo, as production starts it."""

    def __init__(self, repo: Path, workdir: Path, upstream_url: str, workers: int | None, *,
                 config: str = "gunicorn.conf.py", wrapper: list[str] | None = None,
                 env: dict[str, str] | None = None, start_timeout: float = 60):
        self.repo = repo
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "gateway.log"
        self.db_path = workdir / "data" / "zengate.db"
        self.metrics_token = "bench-" + secrets.token_hex(12)
        self.admin_password = "bench-" + secrets.token_hex(8)
        extra_env = env or {}
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("ZENGATE_", "OPENCODE_", "DATABASE_URL")) and k != "PORT"}
        env.update({
            "ZENGATE_UPSTREAM_URL": upstream_url,
            "ZENGATE_GO_UPSTREAM_URL": upstream_url,
            "ZENGATE_BIND": f"127.0.0.1:{self.port}",
            "ZENGATE_ADMIN_PASSWORD": self.admin_password,
            "ZENGATE_DATA_DIR": str(workdir / "data"),
            "DATABASE_URL": f"sqlite:///{self.db_path}",
            "ZENGATE_LOG_LEVEL": "info",
            "ZENGATE_METRICS_TOKEN": self.metrics_token,
        })
        if workers is not None:
            env["ZENGATE_WORKERS"] = str(workers)
        env.update(extra_env)
        python = repo / ".venv" / "bin" / "python"
        self.python = str(python if python.exists() else sys.executable)
        self._log = open(self.log_path, "wb")  # closed in stop()
        self.process = subprocess.Popen([*(wrapper or []), self.python, "-m", "gunicorn", "-c", config, "app:app"],
                                        cwd=repo, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        self.expected_workers = workers or 2

        def healthy():
            if self.process.poll() is not None:
                raise RuntimeError(f"gateway exited with {self.process.returncode}:\n{self.log()[-3000:]}")
            try:
                return http("GET", self.url + "/healthz", timeout=1)[0] == 200 and \
                    len(self.workers()) >= self.expected_workers
            except OSError:
                return False

        wait_until(healthy, start_timeout, "zengate")

    def workers(self) -> list[int]:
        return [pid for pid in procinfo.children(self.process.pid) if "gunicorn" in procinfo.cmdline(pid)]

    def admin(self, method: str, path: str, body: dict | None = None) -> dict:
        """One admin API call (logged in on first use); its JSON answer, or RuntimeError."""
        if not getattr(self, "_admin_token", None):
            status, data = http("POST", self.url + "/_admin/login", json.dumps({"password": self.admin_password})
                                .encode(), {"Content-Type": "application/json"})
            if status != 200:
                raise RuntimeError(f"admin login answered {status}: {data[:200]!r}")
            self._admin_token = json.loads(data)["token"]
        status, data = http(method, self.url + path, json.dumps(body).encode() if body is not None else None,
                            {"Content-Type": "application/json", "Authorization": f"Bearer {self._admin_token}"})
        if status >= 300:
            raise RuntimeError(f"{method} {path} answered {status}: {data[:200]!r}")
        return json.loads(data)

    def client_key(self, **limits) -> str:
        """Require keys and make one (with ``limits``): the header line wrk sends with it."""
        self.admin("POST", "/_admin/settings", {"key": "require_auth", "value": True})
        return "Authorization: Bearer " + self.admin("POST", "/_admin/api-keys", {"name": "bench", **limits})["key"]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def memory(self) -> list[dict]:
        return [{"pid": pid, **procinfo.memory_kb(pid), "fds": procinfo.open_fds(pid)} for pid in self.workers()]

    def cpu(self) -> float:
        return sum(procinfo.cpu_seconds(pid) for pid in self.workers())

    def request_log_rows(self) -> int | None:
        try:
            with sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=5) as db:
                return db.execute("SELECT count(*) FROM request_log").fetchone()[0]
        except sqlite3.Error:
            return None

    def requests_served(self) -> int | None:
        """Client requests the workers finished (``zengate_requests_total`` from ``/metrics``, all workers)."""
        try:
            status, body = http("GET", self.url + "/metrics",
                                headers={"Authorization": f"Bearer {self.metrics_token}"}, timeout=10)
        except OSError:
            return None
        if status != 200:
            return None  # a version without metrics (``--ref`` of an old commit)
        from prometheus_client.parser import text_string_to_metric_families

        return round(sum(sample.value for family in text_string_to_metric_families(body.decode())
                         for sample in family.samples if sample.name == "zengate_requests_total"))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(40)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


class CpuAccount:
    """How busy the machine was during a measurement, and how much of that was not this run.

    ``foreign_cores`` = all CPUs' busy time minus the CPU of this run's own processes (upstream,
    zengate's master and workers, the load generators, this script), per second of wall time.
    On a shared machine it says how much the figures were disturbed by other work.
    """

    def __init__(self, up: Upstream, gw: Gateway):
        self.up, self.gw = up, gw

    def _ours(self) -> float:
        pids = [self.up.process.pid, self.gw.process.pid, *self.gw.workers()]
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        me = resource.getrusage(resource.RUSAGE_SELF)
        # RUSAGE_CHILDREN: the load generators once reaped (the live servers are read from /proc).
        return procinfo.tree_cpu_seconds(pids) + children.ru_utime + children.ru_stime + me.ru_utime + me.ru_stime

    def __enter__(self):
        self.t0, self.busy0, self.ours0 = time.monotonic(), procinfo.system_busy_seconds(), self._ours()
        return self

    def __exit__(self, *exc):
        wall = time.monotonic() - self.t0
        busy = procinfo.system_busy_seconds() - self.busy0
        ours = self._ours() - self.ours0
        self.result = {"wall_s": round(wall, 2), "busy_cores": round(busy / wall, 2),
                       "ours_cores": round(ours / wall, 2), "foreign_cores": round(max(0.0, busy - ours) / wall, 2)}
        return False


# --- load generators ------------------------------------------------------------------------

class Loads:
    def __init__(self, workdir: Path, args):
        self.workdir = workdir
        self.args = args
        self.bodies: dict[str, Path] = {}

    def body_file(self, name: str, body: dict) -> Path:
        path = self.workdir / f"{name}.json"
        path.write_text(json.dumps(body))
        return path

    def wrk(self, url: str, body: Path, connections: int, duration: float, headers: list[str] = ()) -> dict:
        env = {**os.environ, "BENCH_BODY_FILE": str(body), "BENCH_HEADERS": "\n".join(headers)}
        argv = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", "--timeout", "10s",
                "-s", str(BENCH / "wrk" / "post.lua"), url]
        if self.args.wrk_cpu is not None:
            argv = ["taskset", "-c", str(self.args.wrk_cpu), *argv]
        out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=duration + 60)
        line = next((ln for ln in out.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
        if line is None:
            raise RuntimeError(f"wrk gave no result (exit {out.returncode}):\n{out.stdout}\n{out.stderr}")
        result = json.loads(line[len("BENCH_JSON "):])
        secs = result["duration_us"] / 1e6
        result["rps"] = result["requests"] / secs if secs else 0.0
        result["error_count"] = sum(result["errors"].values())
        result["connections"] = connections
        return result

    def streams(self, mode: str, url: str, body: Path, *, headers: list[str] = (), on_held=None, **opts) -> dict:
        argv = [sys.executable, str(BENCH / "streams.py"), mode, url, "--body", str(body)]
        for h in headers:
            argv += ["--header", h]
        for key, value in opts.items():
            argv += [f"--{key.replace('_', '-')}", str(value)]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        held = None
        result = None
        try:
            for line in proc.stdout:  # ends when the client exits; the client bounds its own time
                if line.startswith("HELD "):
                    held = json.loads(line[5:])
                    if on_held is not None:
                        on_held(held)
                elif line.startswith("RESULT "):
                    result = json.loads(line[7:])
            proc.wait(30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if result is None:
            raise RuntimeError(f"streams.py {mode} gave no result:\n{proc.stderr.read()}")
        if held is not None:
            result["held_report"] = held
        return result


# --- the run --------------------------------------------------------------------------------

def git_facts(repo: Path, ref: str | None) -> dict:
    def git(*a):
        r = subprocess.run(["git", *a], cwd=repo, capture_output=True, text=True, check=False)
        return r.stdout.strip() if r.returncode == 0 else None

    if ref:
        return {"ref": ref, "commit": git("rev-parse", ref + "^{commit}"), "dirty_files": []}
    status = git("status", "--porcelain", "--", "zengate", "app.py", "gunicorn.conf.py", "migrations")
    return {"ref": "working tree", "commit": git("rev-parse", "HEAD"),
            "dirty_files": status.splitlines() if status else []}


def export_ref(repo: Path, ref: str, dest: Path) -> Path:
    """A clean copy of ``ref`` (``git archive``), so edits in progress in the working tree don't matter."""
    dest.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", "--format=tar", ref], cwd=repo, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    return dest


def machine_facts() -> dict:
    return {
        "nproc": os.cpu_count(),
        "cpu_model": next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo")
                           if ln.startswith("model name")), platform.processor()),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "wrk": (subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout.split("\n")[0]
                .split(" [")[0]),
    }


def wait_idle(gw: Gateway, limit_s: float = 20.0) -> float:
    """Wait until zengate's workers are idle (a load generator that just quit leaves requests in
    flight); returns the seconds waited. Measuring from an idle gateway keeps the ramp-up of new
    connections out of the figures (docs/performance-history.md, first session: new connections wait
    to be accepted under load)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit_s:
        c0 = gw.cpu()
        time.sleep(0.25)
        if (gw.cpu() - c0) / 0.25 < 0.05:
            break
    return round(time.monotonic() - t0, 2)


class QuietGate:
    """With ``--wait-quiet``: before each measurement, wait (from one budget for the whole run) until
    other processes use less than ``threshold`` cores for two 1-second windows in a row."""

    def __init__(self, budget_s: float, threshold: float = 0.15):
        self.left = budget_s
        self.threshold = threshold
        self.waited = 0.0

    def __call__(self, up: Upstream | None = None, gw: Gateway | None = None) -> float | None:
        if self.left <= 0:
            return None
        quiet_windows = 0
        load = None
        while self.left > 0:
            t0 = time.monotonic()
            busy0, ours0 = procinfo.system_busy_seconds(), self._ours(up, gw)
            time.sleep(1.0)
            wall = time.monotonic() - t0
            load = max(0.0, procinfo.system_busy_seconds() - busy0 - (self._ours(up, gw) - ours0)) / wall
            quiet_windows = quiet_windows + 1 if load < self.threshold else 0
            if quiet_windows >= 2:
                return round(load, 2)
            self.left -= wall
            self.waited += wall
            if quiet_windows == 0 and round(self.waited) % 10 == 0:
                log(f"machine busy with other work ({load:.2f} cores): waiting ({self.left:.0f} s of waiting left)")
        return round(load, 2) if load is not None else None

    @staticmethod
    def _ours(up, gw) -> float:
        pids = [p for p in ((up.process.pid if up else None), (gw.process.pid if gw else None)) if p]
        pids += gw.workers() if gw else []
        me = resource.getrusage(resource.RUSAGE_SELF)
        return procinfo.tree_cpu_seconds(pids) + me.ru_utime + me.ru_stime


def settle(gw: Gateway, seconds: float) -> None:
    """Let the workers go idle: request-log batches written, no traffic."""
    deadline = time.monotonic() + seconds
    time.sleep(min(seconds, 0.5))
    while time.monotonic() < deadline:
        time.sleep(0.25)


def request_log_settled(gw: Gateway, timeout: float = 15.0) -> tuple[int | None, int | None]:
    """The request log's rows and the requests served, once every request served has its row.

    A worker writes its rows at the next tick of its background loop after the request: on a busy
    machine that can be later than the settling pause. Waits (``timeout`` at most) until the rows
    catch up with the count, read first; with no traffic, neither moves otherwise.
    """
    deadline = time.monotonic() + timeout
    while True:
        served = gw.requests_served()
        rows = gw.request_log_rows()
        if served is None or rows is None or rows >= served or time.monotonic() >= deadline:
            return rows, served
        time.sleep(0.1)  # polling a condition, bounded by the deadline


def probe(url: str, body: dict, headers: list[str]) -> tuple[int, str]:
    hdrs = {"Content-Type": "application/json"}
    for h in headers:
        name, _, value = h.partition(":")
        hdrs[name.strip()] = value.strip()
    status, content = http("POST", url, json.dumps(body).encode(), hdrs)
    return status, content[:300].decode(errors="replace")


def _count_connections(gw: Gateway, into: dict[int, int]) -> None:
    """Each worker's share of the load generator's kept-alive connections (sampled mid-run)."""
    into.update(procinfo.client_connections(gw.workers(), gw.port))


def measure_nonstream(loads: Loads, up: Upstream, gw: Gateway, args, files: dict, raw: dict,
                      anthropic_ok: bool, responses_ok: bool = False) -> None:
    for c in args.concurrency:
        runs = [("openai_direct", up.url + "/chat/completions", files["openai"], []),
                ("openai_zengate", gw.url + "/v1/chat/completions", files["openai"], [])]
        if anthropic_ok:
            runs.append(("anthropic_zengate", gw.url + "/v1/messages", files["anthropic"], ANTHROPIC_HEADERS))
        if responses_ok and c == RESPONSES_CONCURRENCY:
            runs += [("responses_openai_zengate", gw.url + "/v1/responses", files["responses"], []),
                     ("responses_direct", up.url + "/responses", files["responses_up"], []),
                     ("responses_zengate", gw.url + "/v1/responses", files["responses_up"], [])]
        for name, url, body, headers in runs:
            if args.warmup > 0:
                loads.wrk(url, body, c, args.warmup, headers)
            idle_wait = wait_idle(gw)
            quiet = args.quiet_gate(up, gw)
            cpu0 = gw.cpu()
            up_cpu0 = procinfo.cpu_seconds(up.process.pid)
            profiled = name.endswith("_zengate") and c in args.profile
            profilers = start_profilers(gw, args, f"{name}-c{c}") if profiled else []
            held: dict[int, int] = {}
            sampler = threading.Timer(args.duration / 2, _count_connections, args=(gw, held))
            if name.endswith("_zengate"):
                sampler.start()
            with CpuAccount(up, gw) as acct:
                result = loads.wrk(url, body, c, args.duration, headers)
            sampler.cancel()  # a no-op once it has run, or when it was never started
            finish_profilers(profilers, raw)
            if held:
                result["connections_per_worker"] = {str(pid): n for pid, n in held.items()}
            result["cpu"] = acct.result
            result["zengate_cpu_s"] = gw.cpu() - cpu0
            result["upstream_cpu_s"] = procinfo.cpu_seconds(up.process.pid) - up_cpu0
            result["idle_wait_s"] = idle_wait
            result["other_load_before"] = quiet
            raw.setdefault(name, {})[str(c)] = result
            spread = f"  connections per worker {'/'.join(map(str, sorted(held.values(), reverse=True)))}" \
                if held else ""
            log(f"{name:24} c={c:<4} {result['rps']:8.0f} req/s  p50 {result['latency_us']['p50'] / 1000:7.2f} ms  "
                f"p99 {result['latency_us']['p99'] / 1000:7.2f} ms  errors {result['error_count']}  "
                f"(other load {acct.result['foreign_cores']:.2f} cores){spread}")


def start_profilers(gw: Gateway, args, label: str) -> list[tuple[subprocess.Popen, Path]]:
    """py-spy on every worker for the run about to start (``--profile``): collapsed stacks."""
    py_spy = shutil.which("py-spy") or str(Path(gw.python).parent / "py-spy")
    if not Path(py_spy).exists():
        raise RuntimeError("--profile needs py-spy (.venv/bin/python -m pip install py-spy)")
    args.profile_dir.mkdir(parents=True, exist_ok=True)
    procs = []
    for pid in gw.workers():
        out = args.profile_dir / f"{label}-worker{pid}.txt"
        argv = [py_spy, "record", "--pid", str(pid), "--duration", str(max(1, int(args.duration) - 1)),
                "--rate", "250", "--format", "raw", "--nonblocking", "-o", str(out)]
        procs.append((subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), out))
    return procs


def finish_profilers(procs: list[tuple[subprocess.Popen, Path]], raw: dict) -> None:
    for proc, out in procs:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        raw.setdefault("profiles", []).append(str(out))


def measure_streams(loads: Loads, up: Upstream, gw: Gateway, args, files: dict, raw: dict,
                    anthropic_ok: bool, responses_ok: bool = False) -> None:
    for c in args.stream_concurrency:
        n = args.streams_c1 if c == 1 else c * args.stream_rounds
        runs = [("stream_openai_direct", up.url + "/chat/completions", files["openai_stream"], []),
                ("stream_openai_zengate", gw.url + "/v1/chat/completions", files["openai_stream"], [])]
        if anthropic_ok:
            runs.append(("stream_anthropic_zengate", gw.url + "/v1/messages", files["anthropic_stream"],
                         ANTHROPIC_HEADERS))
        if responses_ok and c == RESPONSES_CONCURRENCY:
            runs += [("stream_responses_openai_zengate", gw.url + "/v1/responses", files["responses_stream"], []),
                     ("stream_responses_direct", up.url + "/responses", files["responses_up_stream"], []),
                     ("stream_responses_zengate", gw.url + "/v1/responses", files["responses_up_stream"], [])]
        for name, url, body, headers in runs:
            loads.streams("latency", url, body, headers=headers, concurrency=c, streams=min(n, 2 * c))  # warm-up
            wait_idle(gw)
            args.quiet_gate(up, gw)
            cpu0 = gw.cpu()
            up_cpu0 = procinfo.cpu_seconds(up.process.pid)
            profiled = name.endswith("_zengate") and c in args.profile_streams
            profilers = start_profilers(gw, args, f"{name}-c{c}") if profiled else []
            with CpuAccount(up, gw) as acct:
                result = loads.streams("latency", url, body, headers=headers, concurrency=c, streams=n,
                                       deadline=args.duration * 4)
            finish_profilers(profilers, raw)
            result["cpu"] = acct.result
            result["zengate_cpu_s"] = gw.cpu() - cpu0
            result["upstream_cpu_s"] = procinfo.cpu_seconds(up.process.pid) - up_cpu0
            raw.setdefault(name, {})[str(c)] = result
            log(f"{name:31} c={c:<3} ttft p50 {result['ttft_ms']['p50'] or 0:7.2f} ms  "
                f"p99 {result['ttft_ms']['p99'] or 0:7.2f} ms  total p50 {result['total_ms']['p50'] or 0:7.1f} ms  "
                f"errors {result['errors']}  (other load {acct.result['foreign_cores']:.2f} cores)")


def measure_held(loads: Loads, up: Upstream, gw: Gateway, args, files: dict, raw: dict) -> None:
    n = args.held_streams
    for name, url, mem_of in (
        ("held_direct", up.url + "/chat/completions",
         lambda: [{"pid": up.process.pid, **procinfo.memory_kb(up.process.pid),
                   "fds": procinfo.open_fds(up.process.pid)}]),
        ("held_zengate", gw.url + "/v1/chat/completions", gw.memory),
    ):
        settle(gw, 1.0)
        args.quiet_gate(up, gw)
        before = mem_of()
        snapshot: dict = {}

        def on_held(held, mem_of=mem_of, snapshot=snapshot):
            time.sleep(0.5)  # let the last streams' buffers settle
            snapshot["during"] = mem_of()
            snapshot["upstream"] = up.stats()
            up.release()

        result = loads.streams("hold", url, files["hold"], on_held=on_held, streams=n,
                               open_timeout=args.hold_open_timeout, finish_timeout=30)
        up.release()  # in case the client never reported (every held stream must end)
        result["memory_before"] = before
        result["memory_during"] = snapshot.get("during")
        result["upstream_during"] = snapshot.get("upstream")
        raw[name] = result
        log(f"{name:14} held {result['held']}/{n}  completed {result['completed']}  errors {result['errors']}  "
            f"upstream saw {(snapshot.get('upstream') or {}).get('held_streams')} held")


def _interrupt(_signum, _frame):
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short smoke run (~1 minute)")
    parser.add_argument("--duration", type=float, default=None, help="seconds per wrk measurement (8; quick 2)")
    parser.add_argument("--warmup", type=float, default=None, help="seconds of wrk warm-up before each (2; quick 1)")
    parser.add_argument("--concurrency", default="1,32,256", help="non-streaming concurrencies")
    parser.add_argument("--stream-concurrency", default="1,64")
    parser.add_argument("--held-streams", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=None, help="ZENGATE_WORKERS (default: zengate's own, 2)")
    parser.add_argument("--upstream-cpu", default="1", help="CPU to pin the upstream to, or 'none'")
    parser.add_argument("--wrk-cpu", type=int, default=None, help="CPU to pin wrk to (default: not pinned)")
    parser.add_argument("--repo", type=Path, default=DEFAULT_REPO, help="zengate checkout to run (default: this one)")
    parser.add_argument("--ref", default=None,
                        help="run a committed version instead of the working tree (git archive REF, e.g. HEAD)")
    parser.add_argument("--out", type=Path, default=BENCH / "results" / "latest.json")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, database)")
    parser.add_argument("--only", default="all", help="comma list of: nonstream, streams, held (default all)")
    parser.add_argument("--profile", default="",
                        help="comma list of non-streaming concurrencies to profile zengate's workers at with "
                             "py-spy (collapsed stacks in --profile-dir; see bench/tools/profile_summary.py)")
    parser.add_argument("--profile-streams", default="",
                        help="comma list of stream concurrencies to profile the same way (e.g. 64)")
    parser.add_argument("--profile-dir", type=Path, default=BENCH / "results" / "profiles")
    parser.add_argument("--wait-quiet", type=float, default=0, metavar="SECONDS",
                        help="before each measurement, wait (up to this long in all) until other processes leave "
                             "the CPUs (shared machines)")
    parser.add_argument("--hold-seconds", type=float, default=0,
                        help="after the run, keep everything up this long (to attach py-spy by hand)")
    args = parser.parse_args(argv)

    args.duration = args.duration or (2.0 if args.quick else 8.0)
    args.warmup = args.warmup if args.warmup is not None else (1.0 if args.quick else 2.0)
    args.concurrency = [int(x) for x in args.concurrency.split(",") if x]
    args.stream_concurrency = [int(x) for x in args.stream_concurrency.split(",") if x]
    args.streams_c1 = 15 if args.quick else 60
    args.stream_rounds = 3 if args.quick else 8
    args.hold_open_timeout = 60.0
    args.profile = [int(x) for x in args.profile.split(",") if x]
    args.profile_streams = [int(x) for x in args.profile_streams.split(",") if x]
    args.upstream_cpu = None if str(args.upstream_cpu).lower() == "none" else int(args.upstream_cpu)
    only = set(args.only.split(",")) if args.only != "all" else {"nonstream", "streams", "held"}
    if shutil.which("wrk") is None:
        print("bench: wrk is not installed (bash .ci/install --bench, or apt-get install -y wrk)", file=sys.stderr)
        return 2

    # 1,000 streams need ~2,000 descriptors in a worker (client and upstream sockets): raise the
    # soft limit to the hard one for everything started from here.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < min(hard, 65536):
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))

    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="zengate-bench-"))
    raw: dict = {}
    meta = {
        "date": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        "machine": machine_facts(),
        "repo": str(args.repo.resolve()),
        "git": git_facts(args.repo, args.ref),
        "settings": {
            "quick": args.quick, "duration_s": args.duration, "warmup_s": args.warmup,
            "concurrency": args.concurrency, "stream_concurrency": args.stream_concurrency,
            "streams_at_c1": args.streams_c1, "stream_rounds": args.stream_rounds,
            "held_streams": args.held_streams, "workers": args.workers or "default (2)",
            "upstream_cpu": args.upstream_cpu, "wrk_cpu": args.wrk_cpu,
            "stream_chunks": 20, "stream_interval_ms": 5, "nofile_limit": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
        },
    }
    # A SIGTERM (a timeout, a CI cancel) unwinds like Ctrl-C so every process started here is stopped.
    signal.signal(signal.SIGTERM, _interrupt)
    args.quiet_gate = QuietGate(args.wait_quiet)
    if args.wait_quiet > 0:
        meta["other_load_at_start"] = args.quiet_gate()
    with ExitStack() as stack:
        log(f"workdir {workdir}")
        repo = export_ref(args.repo, args.ref, workdir / "src") if args.ref else args.repo
        up = Upstream(workdir, args.upstream_cpu, chunks=20, interval_ms=5.0, hold_max=120.0)
        stack.callback(up.stop)
        gw = Gateway(repo, workdir, up.url, args.workers)
        stack.callback(gw.stop)
        log(f"upstream {up.url} (pid {up.process.pid}), zengate {gw.url} (master {gw.process.pid}, "
            f"workers {gw.workers()})")
        loads = Loads(workdir, args)
        run_acct = CpuAccount(up, gw).__enter__()
        files = {
            "openai": loads.body_file("openai", OPENAI_BODY),
            "anthropic": loads.body_file("anthropic", ANTHROPIC_BODY),
            "openai_stream": loads.body_file("openai_stream", {**OPENAI_BODY, "stream": True}),
            "anthropic_stream": loads.body_file("anthropic_stream", {**ANTHROPIC_BODY, "stream": True}),
            "responses": loads.body_file("responses", RESPONSES_BODY),
            "responses_stream": loads.body_file("responses_stream", {**RESPONSES_BODY, "stream": True}),
            "responses_up": loads.body_file("responses_up", RESPONSES_UP_BODY),
            "responses_up_stream": loads.body_file("responses_up_stream", {**RESPONSES_UP_BODY, "stream": True}),
            "hold": loads.body_file("hold", {**OPENAI_BODY, "model": HOLD_MODEL, "stream": True}),
        }

        # Sanity: each path answers 200 before it is measured.
        checks = {
            "openai_direct": probe(up.url + "/chat/completions", OPENAI_BODY, []),
            "openai_zengate": probe(gw.url + "/v1/chat/completions", OPENAI_BODY, []),
            "anthropic_zengate": probe(gw.url + "/v1/messages", ANTHROPIC_BODY, ANTHROPIC_HEADERS),
            "responses_direct": probe(up.url + "/responses", RESPONSES_UP_BODY, []),
            "responses_openai_zengate": probe(gw.url + "/v1/responses", RESPONSES_BODY, []),
            "responses_zengate": probe(gw.url + "/v1/responses", RESPONSES_UP_BODY, []),
        }
        raw["probes"] = {k: {"status": s, "body": b} for k, (s, b) in checks.items()}
        for name in ("openai_direct", "openai_zengate"):
            if checks[name][0] != 200:
                raise RuntimeError(f"{name} answered {checks[name][0]}: {checks[name][1]}")
        anthropic_ok = checks["anthropic_zengate"][0] == 200
        if not anthropic_ok:
            log(f"/v1/messages answered {checks['anthropic_zengate'][0]}: not measured "
                f"({checks['anthropic_zengate'][1][:120]})")
        if checks["responses_direct"][0] != 200:
            raise RuntimeError(f"responses_direct answered {checks['responses_direct'][0]}: "
                               f"{checks['responses_direct'][1]}")
        responses_ok = all(checks[name][0] == 200 for name in ("responses_openai_zengate", "responses_zengate"))
        for name in ("responses_openai_zengate", "responses_zengate"):
            if checks[name][0] != 200:
                log(f"/v1/responses ({name}) answered {checks[name][0]}: the Responses rows are not measured "
                    f"({checks[name][1][:120]})")

        # Warm-up of every path, then idle memory per worker.
        for c in (1, 32):
            loads.wrk(gw.url + "/v1/chat/completions", files["openai"], c, args.warmup)
            if anthropic_ok:
                loads.wrk(gw.url + "/v1/messages", files["anthropic"], c, args.warmup, ANTHROPIC_HEADERS)
            if responses_ok and c == RESPONSES_CONCURRENCY:
                loads.wrk(gw.url + "/v1/responses", files["responses"], c, args.warmup)
                loads.wrk(gw.url + "/v1/responses", files["responses_up"], c, args.warmup)
        loads.streams("latency", gw.url + "/v1/chat/completions", files["openai_stream"], concurrency=4, streams=8)
        settle(gw, 3.0)
        raw["idle_memory"] = {"zengate_workers": gw.memory(),
                              "upstream": {"pid": up.process.pid, **procinfo.memory_kb(up.process.pid)}}
        log("idle memory per worker (KiB): " + ", ".join(
            f"pid {m['pid']} rss {m['rss']} pss {m['pss']} uss {m['uss']}"
            for m in raw["idle_memory"]["zengate_workers"]))

        if "nonstream" in only:
            measure_nonstream(loads, up, gw, args, files, raw, anthropic_ok, responses_ok)
        if "streams" in only:
            measure_streams(loads, up, gw, args, files, raw, anthropic_ok, responses_ok)
        if "held" in only:
            measure_held(loads, up, gw, args, files, raw)

        run_acct.__exit__(None, None, None)
        meta["cpu"] = run_acct.result
        settle(gw, 2.0)
        raw["memory_after_run"] = gw.memory()
        raw["request_log_rows"], raw["requests_served"] = request_log_settled(gw)
        gw_log = gw.log()
        raw["gateway_log"] = {
            "path": str(gw.log_path) if args.keep else None,
            "lines": gw_log.count("\n"),
            "errors": len(re.findall(r"\[(?:ERROR|CRITICAL)\]| (?:ERROR|CRITICAL) ", gw_log)),  # gunicorn's, zengate's
            "tracebacks": gw_log.count("Traceback (most recent call last)"),
            "worker_timeouts": gw_log.count("WORKER TIMEOUT"),
            "error_samples": [ln for ln in gw_log.splitlines() if ERROR_LINE.search(ln)][:8],
        }
        if args.hold_seconds > 0:
            log(f"holding for {args.hold_seconds}s: zengate workers {gw.workers()}")
            time.sleep(args.hold_seconds)
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    meta["elapsed_s"] = round(time.monotonic() - started, 1)
    meta["waited_for_quiet_s"] = round(args.quiet_gate.waited, 1)
    meta["anthropic_measured"] = raw["probes"]["anthropic_zengate"]["status"] == 200
    meta["responses_measured"] = all(raw["probes"][name]["status"] == 200
                                     for name in ("responses_openai_zengate", "responses_zengate"))

    figures = report.figures(raw, meta)
    document = {"meta": meta, "figures": figures, "raw": raw}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2) + "\n")
    print(report.table(figures, meta))
    print(f"\nJSON: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
