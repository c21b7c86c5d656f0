"""``bench/report.py`` for the tests (bench/ is not a package), and the figures it judges."""

from __future__ import annotations

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "bench_report", Path(__file__).resolve().parents[2] / "bench" / "report.py")
report = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(report)

#: The id of every figure a full run judges: the issue's targets and the two checks.
TARGET_IDS = [
    "openai_zengate.c1.p50_ms", "openai_zengate.c32.rps",
    "anthropic_zengate.c1.p50_ms", "anthropic_zengate.c32.rps",
    "responses_openai_zengate.c1.p50_ms", "responses_zengate.c1.p50_ms",
    "stream_openai_zengate.c1.ttft_ms.p50", "stream_anthropic_zengate.c1.ttft_ms.p50",
    "stream_responses_openai_zengate.c1.ttft_ms.p50", "stream_responses_zengate.c1.ttft_ms.p50",
    "held.streams", "held.bytes_per_stream.rss", "idle.worker_bytes.rss", "gateway_log.errors",
    "request_log.rows",
]
