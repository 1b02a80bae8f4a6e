"""`ocpplab bench` runs end to end and prints its figures as JSON (not judged against targets)."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from typing import Any

import pytest

from tests.support import REDIS_URL, missing


async def bench(*options: str) -> tuple[dict[str, Any], str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ocpplab",
        "bench",
        *options,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 110)
    assert process.returncode == 0, stderr.decode()
    results: dict[str, Any] = json.loads(stdout)
    return results, stderr.decode()


def assert_consistent(figures: dict[str, Any], chargers: int) -> None:
    assert figures["ready"] == figures["connected"] == chargers
    assert 0 < figures["answered"] <= figures["sent"]
    assert figures["errors"] == figures["timeouts"] == 0
    rtt = figures["rtt_ms"]
    assert 0 < rtt["p50"] <= rtt["p90"] <= rtt["p99"] <= rtt["max"]
    assert figures["answered_per_s"] > 0
    assert figures["server_cpu_us_per_call"] > 0
    assert figures["server_rss_per_idle_connection_kib"] is not None


@pytest.mark.timeout(150)
async def test_bench_as_ci_runs_it() -> None:
    results, table = await bench("--duration", "2", "--chargers", "20")
    figures = results["ocpplab"]
    assert results["config"]["chargers"] == 20
    assert_consistent(figures, 20)
    # 500 calls/s offered open loop for 2 s: never more than 1000, and how many fewer only
    # says how loaded this machine is (the generator stops at the deadline), not ocpplab.
    config = results["config"]
    assert (config["rate"], config["duration_s"]) == (500, 2)
    assert figures["sent"] <= 500 * 2, f"more than 500 calls/s offered: {figures}"
    assert figures["answered_per_s"] <= 500, figures
    page = figures["page_latency_ms"]
    assert page["samples"] > 0
    assert page["p50"] <= page["p99"] <= page["max"]
    assert "answered calls/s" in table
    assert "server RSS per idle connection" in table


async def test_bench_compares_with_a_bare_websockets_server() -> None:
    results, table = await bench(
        "--duration", "1", "--chargers", "5", "--settle", "0", "--page-rate", "0", "--compare-raw"
    )
    assert_consistent(results["ocpplab"], 5)
    assert_consistent(results["raw"], 5)
    assert results["fraction_of_raw"]["answered_per_s"] > 0
    assert "ocpplab / raw answered calls/s" in table


@pytest.mark.redis
async def test_bench_with_redis() -> None:
    host, port = REDIS_URL.split("//", 1)[1].split("/", 1)[0].split(":")
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
    except OSError:
        missing(f"Redis at {REDIS_URL}")
    results, _ = await bench(
        "--duration", "1", "--chargers", "5", "--settle", "0", "--redis-url", REDIS_URL
    )
    assert results["config"]["broker"] == "redis"
    assert_consistent(results["ocpplab"], 5)
