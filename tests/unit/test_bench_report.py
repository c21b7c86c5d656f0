"""bench/report.py: the figures and the pass/fail of the issue's targets, from a run's raw measurements.

The raw measurements below have the shape ``bench/run.py`` records (wrk's summary per concurrency,
streams.py's percentiles, /proc memory in KiB); each test moves one of them across its target.
"""

from __future__ import annotations

import copy
import json

import pytest

from tests.support.bench import TARGET_IDS, report


def _wrk(rps: float, p50_us: float, p99_us: float, *, errors: int = 0, requests: int = 10_000,
         zengate_cpu_s: float = 7.0, upstream_cpu_s: float = 0.5, per_worker=None) -> dict:
    run = {"rps": rps, "requests": requests, "error_count": errors,
           "errors": {"connect": 0, "read": 0, "status": errors, "timeout": 0, "write": 0},
           "latency_us": {"p50": p50_us, "p90": p50_us * 1.3, "p99": p99_us},
           "cpu": {"foreign_cores": 0.01}, "zengate_cpu_s": zengate_cpu_s, "upstream_cpu_s": upstream_cpu_s}
    if per_worker is not None:
        run["connections_per_worker"] = per_worker
    return run


def _streams(ttft_p50: float, *, errors: int = 0, streams: int = 60) -> dict:
    return {"streams": streams, "errors": errors, "error_kinds": ["EOF"] * errors,
            "ttft_ms": {"p50": ttft_p50, "p99": ttft_p50 * 2}, "total_ms": {"p50": 101.0, "p99": 104.0},
            "cpu": {"foreign_cores": 0.0}, "zengate_cpu_s": 0.3, "upstream_cpu_s": 0.1}


def _memory(pid: int, rss_kib: int) -> dict:
    return {"pid": pid, "rss": rss_kib, "pss": rss_kib * 3 // 4, "uss": rss_kib * 2 // 3}


def _held(requested: int, held: int, before_kib: int, during_kib: int, *, errors: int = 0) -> dict:
    return {"requested": requested, "held": held, "completed": held, "errors": errors, "error_kinds": [],
            "memory_before": [_memory(1, before_kib)], "memory_during": [_memory(1, during_kib)]}


def passing_raw() -> dict:
    """A run like the eleventh session's, with the Responses rows (c=1 only): every target met."""
    nonstream = {"1": _wrk(1_346, 675, 2_755), "32": _wrk(2_590, 12_761, 29_247, per_worker={"7": 13, "8": 19})}
    ok = {"status": 200, "body": "{}"}
    return {
        "probes": {"anthropic_zengate": ok, "responses_direct": ok, "responses_openai_zengate": ok,
                   "responses_zengate": ok},
        "openai_direct": {"1": _wrk(11_136, 88, 204, upstream_cpu_s=4.25),
                          "32": _wrk(71_855, 396, 878, requests=582_023, upstream_cpu_s=8.04)},
        "openai_zengate": nonstream,
        "anthropic_zengate": copy.deepcopy(nonstream),
        "responses_openai_zengate": {"1": _wrk(1_290, 702, 2_801)},
        "responses_direct": {"1": _wrk(10_870, 91, 210, upstream_cpu_s=4.3)},
        "responses_zengate": {"1": _wrk(1_380, 660, 2_690)},
        "stream_openai_direct": {"1": _streams(0.27)},
        "stream_openai_zengate": {"1": _streams(1.77)},
        "stream_anthropic_zengate": {"1": _streams(1.88)},
        "stream_responses_openai_zengate": {"1": _streams(1.95)},
        "stream_responses_direct": {"1": _streams(0.31)},
        "stream_responses_zengate": {"1": _streams(1.70)},
        "held_direct": _held(1000, 1000, 23_052, 27_132),
        "held_zengate": _held(1000, 1000, 63_608, 70_160),
        "idle_memory": {"zengate_workers": [_memory(7, 52_268), _memory(8, 53_900)],
                        "upstream": {"pid": 6, "rss": 21_828, "pss": 13_590, "uss": 11_868}},
        "memory_after_run": [_memory(7, 67_016)],
        "request_log_rows": 144_871,
        "requests_served": 144_871,
        "gateway_log": {"errors": 0, "worker_timeouts": 0, "error_samples": []},
    }


META = {"date": "2026-12-03T07:54:41+00:00",
        "machine": {"nproc": 2, "cpu_model": "Intel(R) Xeon(R) Processor", "python": "3.11.7"},
        "git": {"commit": "6940a9004940a361df9b710dac099281164a8925", "dirty_files": [], "ref": "HEAD"},
        "settings": {"workers": "default (2)", "upstream_cpu": 1}, "elapsed_s": 176.0}


def verdicts(raw: dict) -> dict[str, bool | None]:
    return {row["id"]: row["pass"] for row in report.figures(raw, META) if row["pass"] is not None}


def by_id(raw: dict) -> dict[str, dict]:
    return {row["id"]: row for row in report.figures(raw, META)}


def test_a_run_meeting_every_target_is_judged_so():
    raw = passing_raw()
    assert verdicts(raw) == dict.fromkeys(TARGET_IDS, True)
    text = report.table(report.figures(raw, META), META)
    assert "targets met: 15/15" in text
    assert "FAIL" not in text


def test_added_latency_is_zengate_minus_direct_and_the_ratio_is_their_quotient():
    rows = by_id(passing_raw())
    c1 = rows["openai_zengate.c1.p50_ms"]
    assert (c1["direct"], c1["zengate"]) == (0.088, 0.675)
    assert c1["added"] == pytest.approx(0.587)
    assert c1["ratio"] == pytest.approx(0.675 / 0.088)
    ttft = rows["stream_anthropic_zengate.c1.ttft_ms.p50"]
    assert ttft["added"] == pytest.approx(1.61)


@pytest.mark.parametrize(("zengate_p50_us", "ok"), [(1_088, True), (1_089, False)])
def test_c1_added_latency_target_is_at_most_one_millisecond(zengate_p50_us, ok):
    raw = passing_raw()
    raw["openai_zengate"]["1"]["latency_us"]["p50"] = zengate_p50_us  # direct p50: 88 µs
    got = verdicts(raw)
    assert got["openai_zengate.c1.p50_ms"] is ok
    assert got["anthropic_zengate.c1.p50_ms"] is True  # the other API is judged on its own


@pytest.mark.parametrize(("rps", "ok"), [(1_000.0, True), (999.9, False)])
def test_c32_throughput_target_is_at_least_a_thousand_requests_per_second(rps, ok):
    raw = passing_raw()
    raw["anthropic_zengate"]["32"]["rps"] = rps
    assert verdicts(raw)["anthropic_zengate.c32.rps"] is ok


def test_a_fast_run_with_errors_fails_its_targets():
    raw = passing_raw()
    raw["openai_zengate"]["1"] = _wrk(1_346, 675, 2_755, errors=3)
    raw["openai_zengate"]["32"] = _wrk(2_590, 12_761, 29_247, errors=1)
    rows = by_id(raw)
    assert rows["openai_zengate.c1.p50_ms"]["pass"] is False
    assert rows["openai_zengate.c32.rps"]["pass"] is False
    assert rows["openai_zengate.c32.rps"]["note"].startswith("1 errors")


@pytest.mark.parametrize(("ttft", "errors", "ok"), [(2.27, 0, True), (2.28, 0, False), (1.0, 2, False)])
def test_first_token_target_is_at_most_two_milliseconds_added_without_errors(ttft, errors, ok):
    raw = passing_raw()
    raw["stream_openai_zengate"]["1"] = _streams(ttft, errors=errors)  # direct: 0.27 ms
    assert verdicts(raw)["stream_openai_zengate.c1.ttft_ms.p50"] is ok


def test_memory_per_open_stream_is_the_growth_in_decimal_kilobytes_per_stream():
    rows = by_id(passing_raw())
    rss = rows["held.bytes_per_stream.rss"]
    assert rss["zengate"] == pytest.approx((70_160 - 63_608) * 1024 / 1000 / 1000)  # KiB → KB per stream
    assert rss["pass"] is True
    raw = passing_raw()
    raw["held_zengate"] = _held(1000, 1000, 63_608, 63_608 + 97_657)  # 100,000.8 bytes a stream
    assert verdicts(raw)["held.bytes_per_stream.rss"] is False


def test_streams_not_all_held_fail_both_held_targets_however_little_memory_they_took():
    raw = passing_raw()
    raw["held_zengate"] = _held(1000, 998, 63_608, 64_000, errors=2)
    got = verdicts(raw)
    assert got["held.streams"] is False
    assert got["held.bytes_per_stream.rss"] is False
    assert "held 998" in by_id(raw)["held.streams"]["note"]


@pytest.mark.parametrize(("rss_kib", "ok"), [(58_593, True), (58_594, False)])
def test_idle_memory_target_reads_the_largest_worker_in_decimal_megabytes(rss_kib, ok):
    raw = passing_raw()
    raw["idle_memory"]["zengate_workers"][1]["rss"] = rss_kib  # 58,594 KiB = 60,000,256 bytes
    assert verdicts(raw)["idle.worker_bytes.rss"] is ok


def test_errors_in_the_gateway_log_fail_the_run_and_are_quoted():
    raw = passing_raw()
    raw["gateway_log"] = {"errors": 1, "worker_timeouts": 1,
                          "error_samples": ["[ERROR] Exception in worker process"]}
    row = by_id(raw)["gateway_log.errors"]
    assert (row["zengate"], row["pass"]) == (2, False)
    assert "Exception in worker process" in row["note"]
    assert "targets met: 14/15" in report.table(report.figures(raw, META), META)


def test_an_anthropic_path_that_did_not_answer_is_a_failed_figure_not_a_missing_one():
    raw = passing_raw()
    del raw["anthropic_zengate"], raw["stream_anthropic_zengate"]
    raw["probes"]["anthropic_zengate"] = {"status": 404, "body": "{}"}
    row = by_id(raw)["anthropic_zengate.unavailable"]
    assert row["pass"] is False and "answered 404" in row["note"]


def test_a_run_disturbed_throughout_says_so():
    raw = passing_raw()
    for key in ("openai_zengate", "anthropic_zengate", "responses_openai_zengate", "responses_zengate",
                "stream_openai_zengate", "stream_anthropic_zengate", "stream_responses_openai_zengate",
                "stream_responses_zengate"):
        for run in raw[key].values():
            run["cpu"]["foreign_cores"] = 0.6
    text = report.table(report.figures(raw, META), META)
    assert "WARNING: other processes used 0.60 of 2 cores on average" in text


def test_one_disturbed_target_is_named_even_when_the_run_was_quiet_on_average():
    raw = passing_raw()
    raw["stream_openai_zengate"]["1"]["cpu"]["foreign_cores"] = 0.4
    text = report.table(report.figures(raw, META), META)
    assert "on average" not in text
    assert ("WARNING: 1 target(s) measured while other processes used ≥ 0.15 cores (rerun with --wait-quiet): "
            "OpenAI stream c=1 time to first token p50") in text
    quiet = report.table(report.figures(passing_raw(), META), META)
    assert "WARNING" not in quiet


def test_the_results_file_renders_again_as_markdown(tmp_path, capsys):
    raw = passing_raw()
    path = tmp_path / "latest.json"
    path.write_text(json.dumps({"meta": META, "figures": report.figures(raw, META), "raw": raw}))
    assert report.main([str(path), "--markdown"]) == 0
    out = capsys.readouterr().out
    assert "| OpenAI c=1 p50 | ms | 0.09 | 0.68 | 7.67× | +0.59 | added ≤ 1 ms | PASS |" in out
    assert out.count("| PASS |") == 15


@pytest.mark.parametrize("rows", [144_870, 144_872, None])
def test_a_request_log_without_a_row_for_each_request_served_fails(rows):
    raw = passing_raw()
    raw["request_log_rows"] = rows
    row = by_id(raw)["request_log.rows"]
    assert row["pass"] is False
    assert row["note"].endswith("rows for 144,871 requests served (zengate_requests_total)")


def test_a_run_that_could_not_count_the_requests_served_shows_the_rows_unjudged():
    raw = passing_raw()
    raw["requests_served"] = None  # an old commit without /metrics, run with --ref
    row = by_id(raw)["request_log.rows"]
    assert (row["zengate"], row["pass"], row["target"]) == (144_871, None, None)
    assert "targets met: 14/14" in report.table(report.figures(raw, META), META)


def test_the_responses_rows_compare_each_path_with_the_direct_call_of_its_upstreams_api():
    """A Responses client served by a chat upstream is compared with the direct chat call (as
    Anthropic→OpenAI is); served by a Responses upstream, with the direct /responses call."""
    rows = by_id(passing_raw())
    translated, same = rows["responses_openai_zengate.c1.p50_ms"], rows["responses_zengate.c1.p50_ms"]
    assert (translated["direct"], translated["zengate"]) == (0.088, 0.702)
    assert (same["direct"], same["zengate"]) == (0.091, 0.660)
    assert same["added"] == pytest.approx(0.569)
    assert rows["stream_responses_openai_zengate.c1.ttft_ms.p50"]["direct"] == 0.27
    assert rows["stream_responses_zengate.c1.ttft_ms.p50"]["added"] == pytest.approx(1.39)
    assert "responses_zengate.c32.rps" not in rows  # measured at c=1 only
    text = report.table(report.figures(passing_raw(), META), META)
    for figure in ("Responses→OpenAI c=1 p50", "Responses c=1 p50",
                   "Responses→OpenAI stream c=1 time to first token p50",
                   "Responses stream c=1 time to first token p50"):
        assert figure in text


@pytest.mark.parametrize(("p50_us", "ttft", "ok"), [(1_091, 2.31, True), (1_092, 2.32, False)])
def test_the_responses_rows_have_the_same_targets(p50_us, ttft, ok):
    raw = passing_raw()
    raw["responses_zengate"]["1"]["latency_us"]["p50"] = p50_us  # direct /responses p50: 91 µs
    raw["stream_responses_zengate"]["1"] = _streams(ttft)  # direct /responses stream: 0.31 ms
    got = verdicts(raw)
    assert (got["responses_zengate.c1.p50_ms"], got["stream_responses_zengate.c1.ttft_ms.p50"]) == (ok, ok)
    assert got["responses_openai_zengate.c1.p50_ms"] is True


def test_a_responses_path_that_did_not_answer_is_a_failed_figure():
    raw = passing_raw()
    del raw["responses_zengate"], raw["stream_responses_zengate"]
    raw["probes"]["responses_zengate"] = {"status": 502, "body": "{}"}
    row = by_id(raw)["responses_zengate.unavailable"]
    assert row["pass"] is False and row["note"] == "/v1/responses answered 502: not measured"
    assert "responses_openai_zengate.unavailable" not in by_id(raw)
