"""`ocpplab bench`: how fast ocpplab answers, measured with simulated chargers.

It starts ocpplab as a subprocess (in memory, or with `--redis-url`) on core 0 and runs
the load on core 1 (with `taskset`, where it exists), connects `--chargers` simulated
chargers, and offers `--rate` calls per second open loop — a mix of Heartbeat, MeterValues
with five sampled values and StatusNotification — for `--duration` seconds (`--rate 0`:
closed loop, each charger's next call as soon as the last is answered, to find the most
the server sustains). One charger is watched by a page socket, to time a frame's way to a
page. `--compare-raw` measures, in the same invocation and the same way, a bare
`websockets` server that answers every CALL without any OCPP logic.

The figures come out as JSON on stdout and as a table on stderr. Schema validation is on
and the responder is the default one; only the per-charger rate limit is lifted, so that
the load itself is never refused.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gc
import gzip
import json
import os
import re
import resource
import shutil
import socket
import sys
import tempfile
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from typing import Any

from websockets.asyncio.client import connect
from websockets.typing import Origin, Subprotocol

from ocpplab.dialects.ocpp16 import OCPP16
from ocpplab.tools.fleet import Fleet, percentile, run_async

SERVER_CORE, LOAD_CORE = 0, 1
# The bare server's one answer; its fields satisfy a BootNotification, the rest ignore it.
ANSWER = '{"status":"Accepted","currentTime":"2026-01-01T00:00:00.000Z","interval":300}'
UNIQUE_ID = re.compile(r'data-unique-id="([^"]+)"')
TICKS = os.sysconf("SC_CLK_TCK")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = "Measure ocpplab under load from simulated chargers."
    parser.add_argument("--chargers", type=int, default=1000, help="simulated chargers [1000]")
    parser.add_argument(
        "--rate", type=float, default=500.0, help="calls/s offered open loop; 0: closed loop [500]"
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of load [10]")
    parser.add_argument("--redis-url", default=None, help="run ocpplab with this Redis broker")
    parser.add_argument(
        "--compare-raw", action="store_true", help="also measure a bare websockets server"
    )
    parser.add_argument("--call-timeout", type=float, default=5.0, help="seconds [5]")
    parser.add_argument(
        "--page-rate",
        type=float,
        default=5.0,
        help="calls/s (part of --rate) from the one charger a page watches; 0: no page [5]",
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=11.0,
        help="seconds between connecting and the load; a new connection's frames are "
        "published for its first 10 s, so the load meets steady state after that [11]",
    )
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to cores")
    parser.add_argument(
        "--page-weight",
        action="store_true",
        help="instead, what a person's browser receives: the charger page's first load "
        "(gzip, as a browser asks) and the page socket's bytes per OCPP frame on the wire, "
        "with and without permessage-deflate, while one charger sends --rate calls/s",
    )
    parser.add_argument(
        "--hostile",
        action="store_true",
        help="instead of the mix, every charger sends worst-case frames (near 1 MiB, "
        "violating their schema at every element, deeply nested, lone surrogates) at --rate "
        "frames/s in all, while one more charger's Heartbeats are timed; reports peak RSS",
    )


def run(args: argparse.Namespace) -> int:
    return run_async(_bench(args))


@dataclasses.dataclass
class ServerProcess:
    pid: int
    port: int

    @property
    def ocpp_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ocpp/"

    def page_url(self, identity: str) -> str:
        return f"ws://127.0.0.1:{self.port}/chargers/{identity}/live"

    def cpu_seconds(self) -> float:
        """utime + stime from /proc/<pid>/stat (fields 14 and 15, after the command name)."""
        with open(f"/proc/{self.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS

    def rss_bytes(self) -> int:
        with open(f"/proc/{self.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0


async def _bench(args: argparse.Namespace) -> int:
    pin = _can_pin() and not args.no_pin
    _raise_file_limit()
    if pin:
        os.sched_setaffinity(0, {LOAD_CORE})
    results: dict[str, Any] = {
        "config": {
            "chargers": args.chargers,
            "rate": args.rate or "closed loop",
            "duration_s": args.duration,
            "broker": "redis" if args.redis_url else "memory",
            "settle_s": args.settle,
            "pinned": pin,
            "mix": ["Heartbeat", "MeterValues", "StatusNotification"],
        }
    }
    try:
        command, env = _ocpplab_command(args)
        if args.page_weight:
            results["config"] = {"rate": args.rate, "duration_s": args.duration, "pinned": pin}
            async with server_process(command, env, pin) as server:
                results["page_weight"] = await measure_page_weight(server, args)
            print(json.dumps(results, indent=2))
            return 0
        if args.hostile:
            results["config"]["mix"] = [name for name, _ in hostile_frames(MAX_FRAME)]
            async with server_process(command, env, pin) as server:
                results["hostile"] = await measure_hostile(server, args)
            print(json.dumps(results, indent=2))
            return 0
        async with server_process(command, env, pin) as server:
            results["ocpplab"] = await measure(server, args, watch=args.page_rate > 0)
        if args.compare_raw:
            raw = [sys.executable, "-c", "from ocpplab.tools.bench import serve_raw; serve_raw()"]
            async with server_process(raw, dict(os.environ), pin) as server:
                results["raw"] = await measure(server, args, watch=False)
            results["fraction_of_raw"] = fractions(results["ocpplab"], results["raw"])
    except (OSError, RuntimeError) as exc:
        print(f"ocpplab bench: {exc}", file=sys.stderr)
        return 1
    print_table(results)
    print(json.dumps(results, indent=2))
    return 0


def _ocpplab_command(args: argparse.Namespace) -> tuple[list[str], dict[str, str]]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("OCPPLAB_")}
    env.update(
        OCPPLAB_LOG_LEVEL="warning",
        # The hostile load keeps the default limit: it is part of what is measured.
        OCPPLAB_RATE_LIMIT="100" if args.hostile else "1000000",
        OCPPLAB_WORKERS="1",
        OCPPLAB_REDIS_URL=args.redis_url or "",
    )
    return [sys.executable, "-m", "ocpplab"], env


@contextlib.asynccontextmanager
async def server_process(
    command: list[str], env: dict[str, str], pin: bool
) -> AsyncIterator[ServerProcess]:
    """Run a server on a free port (pinned to core 0) until the block ends."""
    port = _free_port()
    env = {**env, "OCPPLAB_HOST": "127.0.0.1", "OCPPLAB_PORT": str(port)}
    if pin:
        command = [shutil.which("taskset") or "taskset", "-c", str(SERVER_CORE), *command]
    with tempfile.TemporaryFile() as log:
        process = await asyncio.create_subprocess_exec(
            *command, env=env, stdout=log, stderr=log, stdin=asyncio.subprocess.DEVNULL
        )
        try:
            await _wait_for_port(port, process)
            yield ServerProcess(process.pid, port)
        except RuntimeError:
            log.seek(0)
            raise RuntimeError(
                f"the server did not start: {log.read().decode(errors='replace')[-2000:]}"
            ) from None
        finally:
            if process.returncode is None:
                process.terminate()
                try:
                    await asyncio.wait_for(process.wait(), 10)
                except TimeoutError:
                    process.kill()
                    await process.wait()


async def measure(
    server: ServerProcess, args: argparse.Namespace, *, watch: bool
) -> dict[str, Any]:
    """Connect the chargers, offer the load, and read the server's figures around it."""
    pace = "open" if args.rate > 0 else "closed"
    await _warm_up(server, args)
    rss_before = server.rss_bytes()
    fleet = Fleet(
        server.ocpp_url,
        args.chargers,
        prefix="bench-",
        scenario="mix",
        pace=pace,
        call_timeout=args.call_timeout,
    )
    try:
        ramp_started = time.perf_counter()
        ready = await fleet.start(ready_timeout=60 + args.chargers / 100)
        ramp = time.perf_counter() - ramp_started
        await asyncio.sleep(max(1.0, args.settle))
        rss_idle = server.rss_bytes()
        async with _page(server, fleet, watch) as page_latencies:
            fleet.stats.reset()
            cpu_before, load_before = server.cpu_seconds(), _own_cpu()
            with _no_gc_pauses():
                if pace == "open":
                    page_rate = args.page_rate if watch else 0.0
                    await fleet.open_loop(args.rate, args.duration, page_rate)
                else:
                    await fleet.closed_loop(args.duration)
                fleet.stats.ended = time.perf_counter()
                await fleet.settle(args.call_timeout)
            cpu, load = server.cpu_seconds() - cpu_before, _own_cpu() - load_before
            figures = fleet.stats.summary()
    finally:
        await fleet.stop()
    answered = figures["answered"]
    figures.update(
        ready=ready,
        ramp_s=round(ramp, 2),
        server_cpu_us_per_call=round(cpu / answered * 1e6, 1) if answered else None,
        server_cpu_share=round(cpu / figures["duration_s"], 3),
        load_generator_cpu_share=round(load / figures["duration_s"], 3),
        server_rss_mib=round(rss_idle / 2**20, 1),
        server_rss_per_idle_connection_kib=(
            round((rss_idle - rss_before) / ready / 1024, 1) if ready else None
        ),
    )
    if watch:
        ordered = sorted(page_latencies)
        figures["page_latency_ms"] = {
            "samples": len(ordered),
            **{
                name: _ms(percentile(ordered, share))
                for name, share in (("p50", 50), ("p90", 90), ("p99", 99), ("max", 100))
            },
        }
    return figures


async def _warm_up(server: ServerProcess, args: argparse.Namespace) -> None:
    """One charger's calls and a page, so that first-use costs are not counted as load."""
    fleet = Fleet(server.ocpp_url, 1, prefix="warmup-", scenario="mix", pace="open")
    try:
        await fleet.start(ready_timeout=10)
        async with _page(server, fleet, True):
            await fleet.open_loop(200, 0.5)
            await fleet.settle(args.call_timeout)
    finally:
        await fleet.stop()


@contextlib.asynccontextmanager
async def _page(server: ServerProcess, fleet: Fleet, watch: bool) -> AsyncIterator[list[float]]:
    """A page socket on the first charger: how long each of its frames takes to show."""
    latencies: list[float] = []
    charger = fleet.chargers[0]
    if not watch or not charger.ready.is_set():
        yield latencies
        return
    probes: dict[str, float] = {}
    live = asyncio.Event()
    task = asyncio.create_task(
        _read_page(server.page_url(charger.identity), probes, latencies, live)
    )
    try:
        async with asyncio.timeout(10):
            await _first_of(live.wait(), task)
        charger.probes = probes
        yield latencies
    finally:
        charger.probes = None
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


async def _read_page(
    url: str, probes: dict[str, float], latencies: list[float], live: asyncio.Event
) -> None:
    async with connect(url, compression=None, proxy=None, ping_interval=None) as page:
        async for message in page:
            now = time.perf_counter()
            if not live.is_set() and "Live updates: on" in str(message):
                live.set()
            for unique_id in UNIQUE_ID.findall(str(message)):
                sent = probes.pop(unique_id, None)
                if sent is not None:
                    latencies.append(now - sent)


async def _first_of(*awaitables: Any) -> None:
    tasks = [asyncio.ensure_future(item) for item in awaitables]
    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for task, item in zip(tasks, awaitables, strict=True):
        if task is not item:
            task.cancel()


def fractions(ocpplab: dict[str, Any], raw: dict[str, Any]) -> dict[str, float | None]:
    """ocpplab's figures as a fraction of the bare server's (calls/s: higher is better)."""

    def ratio(a: float | None, b: float | None) -> float | None:
        return round(a / b, 3) if a is not None and b else None

    return {
        "answered_per_s": ratio(ocpplab["answered_per_s"], raw["answered_per_s"]),
        "rtt_p99": ratio(ocpplab["rtt_ms"]["p99"], raw["rtt_ms"]["p99"]),
        "server_cpu_us_per_call": ratio(
            ocpplab["server_cpu_us_per_call"], raw["server_cpu_us_per_call"]
        ),
        "server_rss_per_idle_connection": ratio(
            ocpplab["server_rss_per_idle_connection_kib"],
            raw["server_rss_per_idle_connection_kib"],
        ),
    }


def print_table(results: dict[str, Any]) -> None:
    columns = [name for name in ("ocpplab", "raw") if name in results]
    rows: list[tuple[str, list[Any]]] = []

    def row(label: str, key: str, sub: str | None = None) -> None:
        values = []
        for name in columns:
            value = results[name].get(key)
            values.append(value.get(sub) if isinstance(value, dict) and sub else value)
        rows.append((label, values))

    row("chargers connected", "ready")
    row("calls sent", "sent")
    row("calls answered", "answered")
    row("answered calls/s", "answered_per_s")
    for share in ("p50", "p90", "p99", "max"):
        row(f"round trip {share} (ms)", "rtt_ms", share)
    row("errors", "errors")
    row("timeouts", "timeouts")
    row("server CPU µs per call", "server_cpu_us_per_call")
    row("server CPU share", "server_cpu_share")
    row("server RSS per idle connection (KiB)", "server_rss_per_idle_connection_kib")
    row("load generator CPU share", "load_generator_cpu_share")
    row("generator lag max (ms)", "generator_lag_ms")
    if "page_latency_ms" in results.get("ocpplab", {}):
        for share in ("p50", "p99", "max"):
            row(f"frame -> page {share} (ms)", "page_latency_ms", share)
    header = f"{'':40}" + "".join(f"{name:>14}" for name in columns)
    lines = [header]
    for label, values in rows:
        lines.append(f"{label:40}" + "".join(f"{_cell(value):>14}" for value in values))
    if "fraction_of_raw" in results:
        fraction = results["fraction_of_raw"]
        lines.append(f"ocpplab / raw answered calls/s: {fraction['answered_per_s']}")
    config = results["config"]
    lines.insert(
        0,
        f"ocpplab bench: {config['chargers']} chargers, rate {config['rate']}, "
        f"{config['duration_s']} s, broker {config['broker']}, "
        f"{'pinned server core 0 / load core 1' if config['pinned'] else 'not pinned'}",
    )
    print("\n".join(lines), file=sys.stderr)


@contextlib.contextmanager
def _no_gc_pauses() -> Iterator[None]:
    """Keep the load generator's own garbage collection out of the round trips it times."""
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.unfreeze()


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 3)


def _can_pin() -> bool:
    return shutil.which("taskset") is not None and len(os.sched_getaffinity(0)) >= 2


def _raise_file_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def _wait_for_port(port: int, process: asyncio.subprocess.Process) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.returncode is not None:
            raise RuntimeError(f"exit code {process.returncode}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        return
    raise RuntimeError("no answer on its port within 30 s")


# `--hostile`: the worst a charger may legally send, from many chargers at once

MAX_FRAME = 1_048_576


# What a person's browser receives


ASSET = re.compile(r'(?:href|src)="(/static/[^"]+)"')


def _fetch_gzip(url: str) -> tuple[bytes, int]:
    """A GET as a browser makes it (gzip accepted): the body as sent, and its status."""
    request = urllib.request.Request(url, headers={"Accept-Encoding": "gzip"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return answer.read(), answer.status


async def measure_page_weight(server: ServerProcess, args: argparse.Namespace) -> dict[str, Any]:
    """The charger page's first load in bytes transferred (page and every static file it
    names), and the page socket's wire bytes per OCPP frame while one charger sends
    `args.rate` Heartbeats a second (each a CALL and its CALLRESULT: two frames)."""
    base = f"http://127.0.0.1:{server.port}"
    identity = "bench-page"
    page, _ = await asyncio.to_thread(_fetch_gzip, f"{base}/chargers/{identity}")
    html = gzip.decompress(page) if page[:2] == b"\x1f\x8b" else page
    load = {"page": len(page)}
    for path in dict.fromkeys(ASSET.findall(html.decode())):
        body, _ = await asyncio.to_thread(_fetch_gzip, base + path)
        load[path] = len(body)
    first_load = {"bytes": sum(load.values()), "items": load}
    socket_figures = {}
    for name, compression in (("deflate", "deflate"), ("uncompressed", None)):
        socket_figures[name] = await _page_socket_bytes(server, identity, compression, args)
    return {"first_load": first_load, "page_socket": socket_figures}


async def _page_socket_bytes(
    server: ServerProcess, identity: str, compression: str | None, args: argparse.Namespace
) -> dict[str, Any]:
    counted = [0]

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", server.port)

        async def pipe(
            source: asyncio.StreamReader, sink: asyncio.StreamWriter, count: bool
        ) -> None:
            with contextlib.suppress(ConnectionError):
                while chunk := await source.read(65536):
                    if count:
                        counted[0] += len(chunk)
                    sink.write(chunk)
                    await sink.drain()
            sink.close()

        await asyncio.gather(
            pipe(reader, upstream_writer, False), pipe(upstream_reader, writer, True)
        )

    proxy = await asyncio.start_server(relay, "127.0.0.1", 0)
    port = proxy.sockets[0].getsockname()[1]
    frames = 0
    try:
        page_url = f"ws://127.0.0.1:{port}/chargers/{identity}/live"
        origin = f"http://127.0.0.1:{port}"
        async with (
            connect(
                server.ocpp_url + identity,
                subprotocols=[Subprotocol(OCPP16.subprotocol)],
                proxy=None,
            ) as charger,
            connect(page_url, origin=Origin(origin), compression=compression, proxy=None) as page,
        ):
            boot = {"chargePointVendor": "bench", "chargePointModel": "page weight"}
            await charger.send(json.dumps([2, "boot", "BootNotification", boot]))
            await charger.recv()
            drained = asyncio.create_task(_drain(page))
            await asyncio.sleep(1.0)  # the page's opening replay and status lines
            counted[0] = 0
            interval = 1 / max(args.rate, 1.0)
            started = time.perf_counter()
            n = 0
            while time.perf_counter() - started < args.duration:
                await charger.send(json.dumps([2, f"hb-{n}", "Heartbeat", {}]))
                await charger.recv()
                n += 1
                frames += 2
                await asyncio.sleep(max(0.0, started + n * interval - time.perf_counter()))
            elapsed = time.perf_counter() - started
            await asyncio.sleep(1.0)  # the last batch
            drained.cancel()
            total = counted[0]
    finally:
        proxy.close()
    return {
        "frames": frames,
        "bytes": total,
        "bytes_per_frame": round(total / frames, 1) if frames else None,
        "kbit_per_s": round(total * 8 / 1000 / elapsed, 1),
        "calls_per_s": round(frames / 2 / elapsed, 1),
    }


async def _drain(page: Any) -> None:
    with contextlib.suppress(Exception):
        async for _ in page:
            pass


def hostile_frames(size: int) -> list[tuple[str, str]]:
    """Frames just under `size` bytes that cost a server the most, each a CALL to answer."""
    room = size - 200
    numbers = ",".join(["1"] * (room // 2))
    samples = ",".join(['{"value":"1"}'] * (room // 14))
    return [
        (
            "MeterValues, a bare number at every sampledValue",
            '[2,"h1","MeterValues",{"connectorId":1,"meterValue":[{"timestamp":'
            f'"2026-01-01T00:00:00Z","sampledValue":[{numbers}]}}]}}]',
        ),
        (
            "MeterValues, valid, tens of thousands of samples",
            '[2,"h2","MeterValues",{"connectorId":1,"meterValue":[{"timestamp":'
            f'"2026-01-01T00:00:00Z","sampledValue":[{samples}]}}]}}]',
        ),
        (
            "DataTransfer, a 1 MiB string",
            '[2,"h3","DataTransfer",{"vendorId":"V","data":"' + "x" * room + '"}]',
        ),
        (
            "Heartbeat, nested 1,000 deep",
            '[2,"h4","Heartbeat",{"a":' + "[" * 1000 + "]" * 1000 + "}]",
        ),
        (
            "BootNotification, lone surrogates",
            '[2,"\\ud800","BootNotification",{"chargePointVendor":"\\udcff","chargePointModel":"\\ud800"}]',
        ),
        ("not JSON, 1 MiB", '[2,"h6","DataTransfer",{"vendorId":"' + "y" * room),
    ]


async def measure_hostile(server: ServerProcess, args: argparse.Namespace) -> dict[str, Any]:
    """Connect `--chargers` hostile chargers; send their frames; time a bystander; peak RSS."""
    frames = [text for _, text in hostile_frames(MAX_FRAME)]
    url = server.ocpp_url
    options: dict[str, Any] = {
        "subprotocols": [OCPP16.subprotocol],
        "max_size": None,
        "compression": None,
        "proxy": None,
        "ping_interval": None,
    }
    rss_idle = server.rss_bytes()
    chargers = []
    for number in range(args.chargers):
        chargers.append(await connect(f"{url}hostile-{number}", **options))
    peak = [server.rss_bytes()]
    stop = asyncio.Event()
    sent = [0]

    async def sample_rss() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], server.rss_bytes())
            await asyncio.sleep(0.05)

    async def drain(connection: Any) -> None:
        with contextlib.suppress(Exception):
            async for _ in connection:
                pass

    async def hostile_load() -> None:
        interval = 1.0 / args.rate if args.rate > 0 else 0.0
        started = time.perf_counter()
        while not stop.is_set() and time.perf_counter() - started < args.duration:
            connection = chargers[sent[0] % len(chargers)]
            await connection.send(frames[sent[0] % len(frames)])
            sent[0] += 1
            if interval:
                await asyncio.sleep(interval)

    latencies: list[float] = []

    async def bystander() -> None:
        async with connect(f"{url}bystander", **options) as connection:
            number = 0
            while not stop.is_set():
                number += 1
                began = time.perf_counter()
                await connection.send(f'[2,"b{number}","Heartbeat",{{}}]')
                await asyncio.wait_for(connection.recv(), args.call_timeout)
                latencies.append(time.perf_counter() - began)
                await asyncio.sleep(0.05)

    tasks = [asyncio.create_task(drain(connection)) for connection in chargers]
    tasks += [asyncio.create_task(sample_rss()), asyncio.create_task(bystander())]
    cpu_before = server.cpu_seconds()
    try:
        await hostile_load()
        await asyncio.sleep(2.0)  # let the server work off what was sent
    finally:
        stop.set()
        for connection in chargers:
            await connection.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    ordered = sorted(latencies)
    return {
        "chargers": args.chargers,
        "frames_sent": sent[0],
        "mib_sent": round(sum(len(frames[n % len(frames)]) for n in range(sent[0])) / 2**20, 1),
        "server_cpu_s": round(server.cpu_seconds() - cpu_before, 2),
        "server_rss_idle_mib": round(rss_idle / 2**20, 1),
        "server_rss_peak_mib": round(peak[0] / 2**20, 1),
        "bystander_heartbeats": len(ordered),
        "bystander_rtt_ms": {
            name: _ms(percentile(ordered, share))
            for name, share in (("p50", 50), ("p99", 99), ("max", 100))
        },
    }


# The bare websockets server of `--compare-raw`


def serve_raw() -> None:
    """Answer every CALL with one fixed CALLRESULT: websockets and JSON, no OCPP logic."""
    from websockets.asyncio.server import ServerConnection, serve
    from websockets.typing import Subprotocol

    port = int(os.environ["OCPPLAB_PORT"])

    async def answer(connection: ServerConnection) -> None:
        with contextlib.suppress(Exception):
            async for message in connection:
                frame = json.loads(message)
                if frame[0] == 2:
                    await connection.send(f"[3,{json.dumps(frame[1])},{ANSWER}]")

    async def main() -> int:
        async with serve(
            answer,
            "127.0.0.1",
            port,
            subprotocols=[Subprotocol(OCPP16.subprotocol)],
            ping_interval=30,
            ping_timeout=60,
        ) as server:
            await server.serve_forever()
        return 0

    run_async(main())
