"""Turns the raw measurements of a run into figures (for JSON) and a table (for people).

Units: ms for times, requests/s, and decimal bytes for memory (1 KB = 1,000 bytes, 1 MB =
1,000,000 bytes; /proc reports KiB, converted here), as the targets are written.
"""

from __future__ import annotations

# The targets for this 2-core machine.
TARGET_ADDED_P50_MS = 1.0  # non-streaming, concurrency 1
TARGET_RPS_C32 = 1000.0  # concurrency 32, default workers
TARGET_ADDED_TTFT_MS = 2.0  # streams, concurrency 1
TARGET_STREAM_BYTES = 100_000  # per open stream, with 1,000 open
TARGET_IDLE_WORKER_BYTES = 60_000_000  # per worker
DISTURBED = 0.15  # cores other processes used during a measurement from which its figure is suspect


def _ratio(direct, zengate):
    if direct in (None, 0) or zengate is None:
        return None
    return zengate / direct


def _row(fid: str, figure: str, unit: str, direct, zengate, *, added: bool = False, target: str | None = None,
         ok: bool | None = None, note: str | None = None, other: float | None = None) -> dict:
    """One figure. ``other``: cores other processes used during zengate's measurement (disturbance)."""
    return {
        "id": fid, "figure": figure, "unit": unit, "direct": direct, "zengate": zengate,
        "ratio": _ratio(direct, zengate),
        "added": (zengate - direct) if added and direct is not None and zengate is not None else None,
        "target": target, "pass": ok, "note": note, "other_load": other,
    }


def _other(run: dict | None) -> float | None:
    return ((run or {}).get("cpu") or {}).get("foreign_cores")


# What each path through zengate is compared with: (label, zengate's run, the direct run). A translated
# path is compared with the direct call to the upstream API it is translated to.
NONSTREAM_PATHS = (
    ("OpenAI", "openai_zengate", "openai_direct"),
    ("Anthropic→OpenAI", "anthropic_zengate", "openai_direct"),
    ("Responses→OpenAI", "responses_openai_zengate", "openai_direct"),
    ("Responses", "responses_zengate", "responses_direct"),
)
STREAM_PATHS = (
    ("OpenAI stream", "stream_openai_zengate", "stream_openai_direct"),
    ("Anthropic→OpenAI stream", "stream_anthropic_zengate", "stream_openai_direct"),
    ("Responses→OpenAI stream", "stream_responses_openai_zengate", "stream_openai_direct"),
    ("Responses stream", "stream_responses_zengate", "stream_responses_direct"),
)
# The paths a probe found not answering, and how they are named then (each a failed figure, not a missing one).
UNAVAILABLE = (
    ("anthropic_zengate", ("anthropic_zengate", "stream_anthropic_zengate"), "Anthropic→OpenAI", "/v1/messages"),
    ("responses_openai_zengate", ("responses_openai_zengate", "stream_responses_openai_zengate"),
     "Responses→OpenAI", "/v1/responses"),
    ("responses_zengate", ("responses_zengate", "stream_responses_zengate"), "Responses", "/v1/responses"),
)


def _nonstream_rows(raw: dict, meta: dict) -> list[dict]:
    rows = []
    for api, key, direct_key in NONSTREAM_PATHS:
        runs = raw.get(key) or {}
        direct = raw.get(direct_key) or {}
        for c in sorted(runs, key=int):
            d, z = direct.get(c), runs[c]
            if d is None:
                continue
            c_int = int(c)
            errors = z["error_count"]
            note = f"{errors} errors ({z['errors']})" if errors else None
            if c_int == 32:
                rows.append(_row(f"{key}.c{c}.rps", f"{api} c={c} requests/s", "req/s", d["rps"], z["rps"],
                                 target=f"≥ {TARGET_RPS_C32:,.0f}", ok=z["rps"] >= TARGET_RPS_C32 and not errors,
                                 note=note, other=_other(z)))
            else:
                rows.append(_row(f"{key}.c{c}.rps", f"{api} c={c} requests/s", "req/s", d["rps"], z["rps"],
                                 note=note, other=_other(z)))
            p50d, p50z = d["latency_us"]["p50"] / 1000, z["latency_us"]["p50"] / 1000
            if c_int == 1:
                rows.append(_row(f"{key}.c{c}.p50_ms", f"{api} c={c} p50", "ms", p50d, p50z, added=True,
                                 target=f"added ≤ {TARGET_ADDED_P50_MS:g} ms",
                                 ok=(p50z - p50d) <= TARGET_ADDED_P50_MS and not errors, other=_other(z)))
            else:
                rows.append(_row(f"{key}.c{c}.p50_ms", f"{api} c={c} p50", "ms", p50d, p50z, added=True,
                                 other=_other(z)))
            rows.append(_row(f"{key}.c{c}.p99_ms", f"{api} c={c} p99", "ms", d["latency_us"]["p99"] / 1000,
                             z["latency_us"]["p99"] / 1000, added=True, other=_other(z)))
            held = sorted((z.get("connections_per_worker") or {}).values(), reverse=True)
            if len(held) > 1 and c_int > 1:
                rows.append(_row(f"{key}.c{c}.busiest_worker_connections", f"{api} c={c} connections, busiest worker",
                                 "conns", None, held[0], other=_other(z),
                                 note=f"wrk's {c} kept-alive connections per worker, mid-run: "
                                      + " / ".join(map(str, held))))
            if c_int == 32 and z.get("requests") and d.get("requests"):
                rows.append(_row(f"{key}.c{c}.cpu_us_per_req", f"{api} c={c} CPU per request", "µs",
                                 d["upstream_cpu_s"] / d["requests"] * 1e6, z["zengate_cpu_s"] / z["requests"] * 1e6,
                                 note="direct: the bench upstream's CPU; zengate: its workers' CPU", other=_other(z)))
    for probe_key, keys, api, path in UNAVAILABLE:
        probe = (raw.get("probes") or {}).get(probe_key)
        if probe and probe["status"] != 200 and not any(raw.get(k) for k in keys):
            rows.append(_row(f"{probe_key}.unavailable", f"{api} (non-streaming)", "", None, None,
                             target="measured", ok=False, note=f"{path} answered {probe['status']}: not measured"))
    return rows


def _stream_rows(raw: dict) -> list[dict]:
    rows = []
    for api, key, direct_key in STREAM_PATHS:
        runs = raw.get(key) or {}
        direct = raw.get(direct_key) or {}
        for c in sorted(runs, key=int):
            d, z = direct.get(c), runs[c]
            if d is None:
                continue
            note = f"{z['errors']} errors {z['error_kinds']}" if z["errors"] else None
            for metric, label in (("ttft_ms", "time to first token"), ("total_ms", "total time")):
                for p in ("p50", "p99"):
                    dv, zv = d[metric][p], z[metric][p]
                    target = ok = None
                    if metric == "ttft_ms" and p == "p50" and c == "1":
                        target = f"added ≤ {TARGET_ADDED_TTFT_MS:g} ms"
                        ok = zv is not None and dv is not None and (zv - dv) <= TARGET_ADDED_TTFT_MS and not z["errors"]
                    rows.append(_row(f"{key}.c{c}.{metric}.{p}", f"{api} c={c} {label} {p}", "ms", dv, zv,
                                     added=True, target=target, ok=ok, note=note if p == "p50" else None,
                                     other=_other(z)))
            if z.get("zengate_cpu_s") is not None and z["streams"] and d.get("upstream_cpu_s") is not None:
                rows.append(_row(f"{key}.c{c}.cpu_us_per_stream", f"{api} c={c} CPU per stream", "µs",
                                 d["upstream_cpu_s"] / max(1, d["streams"]) * 1e6,
                                 z["zengate_cpu_s"] / z["streams"] * 1e6,
                                 note="direct: the bench upstream's CPU; zengate: its workers' CPU (20 chunks)",
                                 other=_other(z)))
    return rows


def _sum(mem: list[dict] | None, field: str) -> int | None:
    if not mem:
        return None
    return sum(m.get(field, 0) for m in mem) * 1024


def _held_rows(raw: dict) -> list[dict]:
    rows = []
    d, z = raw.get("held_direct"), raw.get("held_zengate")
    if not z:
        return rows
    n = z["requested"]
    held_ok = z["held"] == n and z["errors"] == 0 and z["completed"] == n
    note = None if held_ok else (f"held {z['held']}, completed {z['completed']}, errors {z['errors']} "
                                 f"{z['error_kinds']}")
    rows.append(_row("held.streams", f"concurrent open streams held (of {n})", "streams",
                     d["held"] if d else None, z["held"], target=f"{n:,}, no error", ok=held_ok, note=note))
    for field, label in (("rss", "RSS"), ("pss", "PSS"), ("uss", "USS")):
        per = {}
        for side, res in (("direct", d), ("zengate", z)):
            if res and res.get("memory_during") and res["held"]:
                per[side] = (_sum(res["memory_during"], field) - _sum(res["memory_before"], field)) / res["held"]
        target = ok = None
        if field == "rss":
            target = f"≤ {TARGET_STREAM_BYTES / 1000:g} KB"
            ok = per.get("zengate") is not None and per["zengate"] <= TARGET_STREAM_BYTES and held_ok
        rows.append(_row(f"held.bytes_per_stream.{field}", f"memory per open stream ({label})", "KB",
                         _kb(per.get("direct")), _kb(per.get("zengate")), target=target, ok=ok,
                         note="direct: the bench upstream process" if field == "rss" else None))
    return rows


def _kb(value):
    return None if value is None else value / 1000


def _idle_rows(raw: dict) -> list[dict]:
    rows = []
    idle = raw.get("idle_memory") or {}
    workers = idle.get("zengate_workers") or []
    if not workers:
        return rows
    upstream = idle.get("upstream") or {}
    for field, label in (("rss", "RSS"), ("pss", "PSS"), ("uss", "USS")):
        worst = max(w.get(field, 0) for w in workers) * 1024
        target = ok = None
        if field == "rss":
            target = f"≤ {TARGET_IDLE_WORKER_BYTES / 1e6:g} MB"
            ok = worst <= TARGET_IDLE_WORKER_BYTES
        rows.append(_row(f"idle.worker_bytes.{field}", f"idle memory per worker ({label}, largest)", "MB",
                         upstream.get(field, 0) * 1024 / 1e6 if upstream.get(field) else None, worst / 1e6,
                         target=target, ok=ok, note="direct: the bench upstream process" if field == "rss" else None))
    after = raw.get("memory_after_run") or []
    if after:
        worst = max(w.get("rss", 0) for w in after) * 1024
        rows.append(_row("after.worker_bytes.rss", "memory per worker after the run (RSS, largest)", "MB",
                         None, worst / 1e6, note="growth over idle: caches, pools, allocator high-water mark"))
    return rows


def _request_log_row(raw: dict) -> dict:
    """The request log's rows, judged against the requests the workers counted as served (when known)."""
    rows, served = raw.get("request_log_rows"), raw.get("requests_served")
    note = "the request log is on (defaults): every request through zengate is a row"
    if served is None:
        return _row("request_log.rows", "request-log rows written", "rows", None, rows, note=note)
    ok = rows == served
    if not ok:
        note = f"{rows if rows is not None else 'no'} rows for {served:,} requests served (zengate_requests_total)"
    return _row("request_log.rows", "request-log rows written", "rows", None, rows,
                target=f"= requests served ({served:,})", ok=ok, note=note)


def figures(raw: dict, meta: dict) -> list[dict]:
    rows = _nonstream_rows(raw, meta) + _stream_rows(raw) + _held_rows(raw) + _idle_rows(raw)
    rows.append(_request_log_row(raw))
    gl = raw.get("gateway_log") or {}
    if gl:
        rows.append(_row("gateway_log.errors", "errors in zengate's log", "lines", None,
                         gl.get("errors", 0) + gl.get("worker_timeouts", 0), target="0",
                         ok=(gl.get("errors", 0) + gl.get("worker_timeouts", 0)) == 0,
                         note="; ".join(gl.get("error_samples") or [])[:300] or None))
    return rows


def _fmt(value, unit: str) -> str:
    if value is None:
        return "—"
    if unit in ("req/s", "rows", "lines", "streams"):
        return f"{value:,.0f}"
    if unit in ("KB", "MB", "µs"):
        return f"{value:,.1f}"
    return f"{value:,.2f}"


def measured_other_load(rows: list[dict]) -> float | None:
    """Mean disturbance over the distinct measurements behind the figures."""
    seen = {}
    for r in rows:
        if r.get("other_load") is not None:
            seen[r["id"].rsplit(".", 1)[0] if ".c" in r["id"] else r["id"]] = r["other_load"]
    return sum(seen.values()) / len(seen) if seen else None


def _source(meta: dict) -> str:
    git = meta.get("git") or {}
    commit = (git.get("commit") or "?")[:10]
    dirty = git.get("dirty_files") or []
    extra = f", {len(dirty)} file(s) modified" if dirty else ""
    pin = meta["settings"].get("upstream_cpu")
    pinned = f"upstream pinned to CPU {pin}" if pin is not None else "upstream not pinned"
    return f"zengate: {git.get('ref', 'working tree')} at {commit}{extra}; {pinned}"


def table(rows: list[dict], meta: dict) -> str:
    header = ("figure", "unit", "direct", "zengate", "ratio", "added", "target", "result", "other load")
    body = []
    for r in rows:
        result = {True: "PASS", False: "FAIL", None: ""}[r["pass"]]
        body.append((
            r["figure"], r["unit"], _fmt(r["direct"], r["unit"]), _fmt(r["zengate"], r["unit"]),
            "—" if r["ratio"] is None else f"{r['ratio']:.2f}×",
            "" if r["added"] is None else f"{r['added']:+,.2f}",
            r["target"] or "", result,
            "" if r.get("other_load") is None else f"{r['other_load']:.2f}",
        ))
    widths = [max(len(str(x)) for x in col) for col in zip(header, *body, strict=False)]
    align = ["<", "<", ">", ">", ">", ">", "<", "<", ">"]

    def line(cells):
        return "  ".join(f"{c:{a}{w}}" for c, a, w in zip(cells, align, widths, strict=False)).rstrip()

    m = meta["machine"]
    out = [f"zengate benchmark — {meta['date']} — {m['nproc']} CPUs ({m['cpu_model']}), Python {m['python']}, "
           f"{meta['settings']['workers']} workers, {meta['elapsed_s']} s",
           _source(meta),
           line(header), line(["-" * w for w in widths])]
    out += [line(cells) for cells in body]
    other = measured_other_load(rows)
    if other is not None and other >= DISTURBED:
        out += ["", f"WARNING: other processes used {other:.2f} of {m['nproc']} cores on average during zengate's "
                    "measurements: the figures are disturbed (last column; raw.*.cpu.foreign_cores)."]
    disturbed = [r["figure"] for r in rows if r["pass"] is not None and (r.get("other_load") or 0) >= DISTURBED]
    if disturbed:
        out += ["", f"WARNING: {len(disturbed)} target(s) measured while other processes used ≥ {DISTURBED} cores "
                    "(rerun with --wait-quiet): " + "; ".join(disturbed)]
    notes = [f"  {r['figure']}: {r['note']}" for r in rows if r.get("note")]
    if notes:
        out += ["", "notes:", *notes]
    out.append("")
    out.append("other load: cores used by other processes during zengate's measurement (≥ 0.15 disturbs the figure)")
    targets = [r for r in rows if r["pass"] is not None]
    out.append("")
    out.append(f"targets met: {sum(1 for r in targets if r['pass'])}/{len(targets)}")
    return "\n".join(out)


def markdown(rows: list[dict], meta: dict) -> str:
    """The same table in Markdown (for docs/performance.md)."""
    out = ["| figure | unit | direct | zengate | ratio | added | target | result | other load |",
           "| --- | --- | ---: | ---: | ---: | ---: | --- | --- | ---: |"]
    for r in rows:
        result = {True: "PASS", False: "**FAIL**", None: ""}[r["pass"]]
        ratio = "—" if r["ratio"] is None else f"{r['ratio']:.2f}×"
        added = "" if r["added"] is None else f"{r['added']:+,.2f}"
        other = "" if r.get("other_load") is None else f"{r['other_load']:.2f}"
        out.append(f"| {r['figure']} | {r['unit']} | {_fmt(r['direct'], r['unit'])} | {_fmt(r['zengate'], r['unit'])} "
                   f"| {ratio} | {added} | {r['target'] or ''} | {result} | {other} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    """Render a results file again: ``python bench/report.py bench/results/latest.json [--markdown]``."""
    import argparse
    import json

    parser = argparse.ArgumentParser(description="render a bench results file")
    parser.add_argument("file")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)
    with open(args.file) as f:
        doc = json.load(f)
    rows = figures(doc["raw"], doc["meta"])
    print(markdown(rows, doc["meta"]) if args.markdown else table(rows, doc["meta"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
