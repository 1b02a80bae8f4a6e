"""Simulated chargers over real websockets: one or thousands, at their own pace or a load rate.

The thin I/O layer around `ocpplab.tools.charger_model`. A `SimulatedCharger` is one connection
(reconnecting after a Reset): a reader task answers the central system's CALLs and matches
answers to our own, and a driver runs the scenario. A `Fleet` ramps many chargers and, in
load mode, paces their calls from one scheduler — open loop at a fixed aggregate rate, or
closed loop (each charger's next call as soon as the last is answered) — so the load costs
no task per call. Timeouts are found by one sweep, not by a timer per call.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import dataclasses
import json
import math
import signal
import ssl
import sys
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, Literal
from urllib.parse import quote

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.protocol import State
from websockets.typing import Subprotocol

from ocpplab.core.frames import Call, CallError, CallResult, InvalidFrame, parse
from ocpplab.dialects.ocpp16 import OCPP16
from ocpplab.tools.charger_model import (
    BEHAVIOURS,
    FAULTS,
    SCENARIO_BODIES,
    SCENARIOS,
    Behaviour,
    ChargerModel,
    Send,
    Step,
    Timing,
    boot_sequence,
    scenario_steps,
)

Pace = Literal["natural", "open", "closed"]
SUBPROTOCOLS = [Subprotocol(OCPP16.subprotocol)]
SWEEP_INTERVAL = 0.1
CONNECT_CONCURRENCY = 200
RECONNECT_DELAYS = (1.0, 2.0, 5.0, 10.0, 30.0)


def percentile(ordered: list[float], share: float) -> float | None:
    """Nearest-rank percentile of an ascending list (`share` in 0..100)."""
    if not ordered:
        return None
    rank = max(1, math.ceil(share / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclasses.dataclass
class Stats:
    """What a run of simulated chargers saw. Round trips are in seconds."""

    chargers: int = 0
    connected: int = 0
    connect_failures: int = 0
    disconnects: int = 0
    sent: int = 0
    answered: int = 0
    errors: int = 0
    timeouts: int = 0
    central_calls: int = 0
    rtts: list[float] = dataclasses.field(default_factory=list)
    started: float = dataclasses.field(default_factory=time.perf_counter)
    ended: float | None = None
    max_lag: float = 0.0

    def reset(self) -> None:
        """Start a new measurement window; connections are kept."""
        self.sent = self.answered = self.errors = self.timeouts = self.central_calls = 0
        self.rtts, self.started, self.ended, self.max_lag = [], time.perf_counter(), None, 0.0

    def summary(self) -> dict[str, Any]:
        elapsed = (self.ended or time.perf_counter()) - self.started
        ordered = sorted(self.rtts)

        def ms(share: float) -> float | None:
            value = percentile(ordered, share)
            return None if value is None else round(value * 1000, 3)

        return {
            "chargers": self.chargers,
            "connected": self.connected,
            "connect_failures": self.connect_failures,
            "disconnects": self.disconnects,
            "duration_s": round(elapsed, 3),
            "sent": self.sent,
            "answered": self.answered,
            "errors": self.errors,
            "timeouts": self.timeouts,
            "central_calls_answered": self.central_calls,
            "answered_per_s": round(self.answered / elapsed, 1) if elapsed > 0 else 0.0,
            "rtt_ms": {"p50": ms(50), "p90": ms(90), "p99": ms(99), "max": ms(100)},
            "generator_lag_ms": round(self.max_lag * 1000, 3),
        }


class SimulatedCharger:
    """One simulated charger on a real websocket (the `websockets` asyncio client)."""

    def __init__(
        self,
        url: str,
        identity: str,
        stats: Stats,
        *,
        scenario: str = "session",
        behaviour: Behaviour = "accept",
        timing: Timing | None = None,
        pace: Pace = "natural",
        call_timeout: float = 10.0,
        password: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        faults: frozenset[str] = frozenset(),
        connectors: int = 1,
    ) -> None:
        self.url = url.rstrip("/") + "/" + quote(identity, safe="")
        self.identity = identity
        self.stats = stats
        self.scenario = scenario
        self.timing = timing or Timing()
        self.pace = pace
        self.call_timeout = call_timeout
        self.headers = _basic_auth(identity, password)
        self.ssl_context = ssl_context
        self.model = ChargerModel(
            identity,
            behaviour=behaviour,
            faults=faults,
            connectors=connectors,
            guided=scenario == "guided",
        )
        self.connection: ClientConnection | None = None
        self.in_flight: dict[str, tuple[float, asyncio.Future[Any] | None]] = {}
        self.ready = asyncio.Event()
        self.looping = False  # closed loop: send the next call on each answer
        self.probes: dict[str, float] | None = None  # send times, for page latency
        self.last_error: str | None = None
        self.failures = 0
        self._wakeup = asyncio.Event()
        self._steps: Iterator[Step] = iter(())
        self._last_sent = 0.0

    # Connection life cycle

    async def run(self, stop: asyncio.Event, gate: asyncio.Semaphore | None = None) -> None:
        """Connect, boot and run the scenario until `stop`; reconnect after a Reset or a drop."""
        attempt = 0
        while not stop.is_set():
            try:
                async with gate or contextlib.nullcontext():
                    connection = await self._connect()
            except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as exc:
                self.stats.connect_failures += 1
                self.failures += 1
                self.last_error = str(exc) or type(exc).__name__
                attempt += 1
                # A charger under guided checks tries every second: a check that cut its
                # connection waits for it to come back.
                delays = (1.0,) if self.model.guided else RECONNECT_DELAYS
                if not await self._offline(stop, delays[min(attempt, len(delays)) - 1]):
                    continue
                return
            attempt = 0
            reset = await self._session(connection, stop)
            if not stop.is_set() and not reset:
                self.stats.disconnects += 1
                await self._offline(stop, RECONNECT_DELAYS[0])

    async def _offline(self, stop: asyncio.Event, seconds: float) -> bool:
        """Wait `seconds` before connecting again, the charger's timed behaviour going on
        (what it samples waits in `pending`); True when `stop` was set meanwhile."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while (now := loop.time()) < deadline:
            self.model.due(now)
            if await _wait(stop, min(0.5, deadline - now)):
                return True
        return stop.is_set()

    def guide(self) -> None:
        """From now on do nothing by itself, as scenario "guided": checks drive it. A
        session in progress ends first (its transaction stopped) at its next step."""
        if self.model.guided:
            return
        self.model.guided = True
        self.scenario = "guided"
        model = self.model
        if model.transaction_on(1) is not None:  # its session's: stopped now, not later
            finishing = model.status(1, "Finishing")
            stop = model.stop_transaction(1, "Local")
            if stop is not None:
                model.pending.extend([finishing, stop, model.status(1, "Available")])
        self._wakeup.set()

    async def act(self, name: str, detail: dict[str, Any]) -> bool:
        """Do a person's act at this charger (`ChargerModel.act`); "power_cycle" drops the
        connection, and the run loop connects and boots again. False when it cannot."""
        if name == "power_cycle" and self.connection is None:
            return False
        if self.connection is None or self.connection.state is not State.OPEN:
            self.model.online = False  # closing: the reader may not have seen it yet
        done = self.model.act(name, detail)
        self._wakeup.set()
        return done

    async def _connect(self) -> ClientConnection:
        return await connect(
            self.url,
            subprotocols=SUBPROTOCOLS,
            additional_headers=self.headers,
            compression=None,  # most chargers do not offer permessage-deflate
            ping_interval=None,  # the central system pings; websockets answers pongs itself
            proxy=None,
            open_timeout=self.call_timeout,
            close_timeout=2,
            ssl=self.ssl_context,
        )

    async def _session(self, connection: ClientConnection, stop: asyncio.Event) -> bool:
        """One connection, from Boot to close; True when it ended for a Reset."""
        self.connection = connection
        self.stats.connected += 1
        self.model.boot_accepted = False
        self.model.online = True
        if self.pace == "natural":
            self._steps = scenario_steps(self.scenario, self.model, self.timing)
        else:
            self._steps = boot_sequence(self.model)
        reader = asyncio.create_task(self._read(connection))
        try:
            await self._drive(stop, reader)
        except ConnectionClosed:
            pass
        finally:
            self.ready.clear()
            self.stats.connected -= 1
            self.connection = None
            self.model.online = False
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            await connection.close()
            self._abandon()
        reset = self.model.reset_requested is not None
        self.model.reset_requested = None
        return reset

    async def _drive(self, stop: asyncio.Event, reader: asyncio.Task[None]) -> None:
        """Boot (waiting for answers), then the scenario at its pace or the fleet's."""
        for step in self._steps:
            if isinstance(step, Send):
                await self.send(step.call, wait=True)
                if self.pace == "natural" and self.model.boot_accepted:
                    self.ready.set()
            elif not await self._sleep(step.seconds, stop, reader):
                return
        # Only load mode gets here: booted, the fleet's scheduler now draws the calls.
        self._steps = SCENARIO_BODIES[self.scenario](self.model, self.timing)
        self.ready.set()
        while not stop.is_set() and not reader.done():
            if not await self._sleep(3600.0, stop, reader):
                return

    async def _sleep(self, seconds: float, stop: asyncio.Event, reader: asyncio.Task[None]) -> bool:
        """Wait, meanwhile sending owed calls and heartbeats; False when the session must end."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while (now := loop.time()) < deadline:
            if stop.is_set() or reader.done():
                return False
            self.model.due(now)
            # Section 4.2: nothing but BootNotification until the boot is accepted.
            booted = self.model.boot_accepted
            if booted:
                await self._flush_pending()
            if self.model.reset_requested is not None:
                return False
            heartbeat_at = self._last_sent + self.model.heartbeat_interval
            if self.pace == "natural" and booted and now >= heartbeat_at:
                await self.send(self.model.heartbeat(), wait=True)
                continue
            wake = min(deadline, heartbeat_at if self.pace == "natural" and booted else deadline)
            due = self.model.next_due()
            if due is not None:
                wake = min(wake, max(due, now + 0.01))
            timeout = wake - now
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, timeout)):
                    await _first(self._wakeup.wait(), stop.wait(), reader)
        return True

    async def _flush_pending(self) -> None:
        while self.model.pending:
            call = self.model.pending.popleft()
            try:
                await self.send(call, wait=self.pace == "natural")
            except ConnectionClosed:
                self.model.pending.appendleft(call)  # sent after the next connect
                raise

    # Sending and receiving

    async def send(self, call: Call, *, wait: bool = False) -> CallResult | CallError | None:
        """Send one CALL; with `wait`, its answer (None after a timeout)."""
        connection = self.connection
        if connection is None:
            return None
        future = asyncio.get_running_loop().create_future() if wait else None
        now = time.perf_counter()
        self.in_flight[call.unique_id] = (now, future)
        if self.probes is not None:
            self.probes[call.unique_id] = now
        self._last_sent = asyncio.get_running_loop().time()
        self.stats.sent += 1
        try:
            await connection.send(call.to_json())
        except ConnectionClosed:
            self.in_flight.pop(call.unique_id, None)
            self.stats.errors += 1
            raise
        if future is None:
            return None
        answer: CallResult | CallError | None = await future
        return answer

    async def send_next(self) -> None:
        """The scenario's next call, without waiting for its answer (load mode)."""
        for step in self._steps:
            if isinstance(step, Send):
                with contextlib.suppress(ConnectionClosed):
                    await self.send(step.call)
                return

    async def _read(self, connection: ClientConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for message in connection:
                frame = parse(message)
                if isinstance(frame, Call):
                    await self._answer(connection, frame)
                elif not isinstance(frame, InvalidFrame):
                    self._answered(frame)
                    if self.looping:
                        await self.send_next()
        self._abandon()  # closed: no answer will come to what is in flight

    async def _answer(self, connection: ClientConnection, call: Call) -> None:
        reply = self.model.handle(call)
        self.stats.central_calls += 1
        if reply is not None:
            await connection.send(reply.to_json())
        self._wakeup.set()  # the call may have queued calls or changed what is due

    def _answered(self, frame: CallResult | CallError) -> None:
        entry = self.in_flight.pop(frame.unique_id, None)
        if entry is None:
            return  # too late: already counted as a timeout
        sent_at, future = entry
        if sent_at >= self.stats.started:
            if isinstance(frame, CallResult):
                self.stats.answered += 1
                self.stats.rtts.append(time.perf_counter() - sent_at)
            else:
                self.stats.errors += 1
        self.model.on_answer(frame.unique_id, frame)
        if self.model.pending:
            self._wakeup.set()
        if future is not None and not future.done():
            future.set_result(frame)

    def sweep(self, now: float) -> None:
        """Count calls unanswered for longer than the call timeout."""
        late = [uid for uid, (sent, _) in self.in_flight.items() if now - sent > self.call_timeout]
        for unique_id in late:
            sent_at, future = self.in_flight.pop(unique_id)
            if sent_at >= self.stats.started:
                self.stats.timeouts += 1
            self.model.on_answer(unique_id, None)
            if future is not None and not future.done():
                future.set_result(None)

    def _abandon(self) -> None:
        for unique_id, (_, future) in list(self.in_flight.items()):
            self.model.forget(unique_id)
            if future is not None and not future.done():
                future.set_result(None)
        self.in_flight.clear()


class Fleet:
    """Many simulated chargers, ramped up together and, in load mode, paced together."""

    def __init__(
        self, url: str, count: int, *, prefix: str = "sim-", **charger_options: Any
    ) -> None:
        self.stats = Stats(chargers=count)
        self.stop_event = asyncio.Event()
        self.chargers = [
            SimulatedCharger(url, f"{prefix}{number}", self.stats, **charger_options)
            for number in range(1, count + 1)
        ]
        self.tasks: list[asyncio.Task[None]] = []
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self, ready_timeout: float = 60.0) -> int:
        """Connect every charger (a few hundred handshakes at a time); how many are ready."""
        gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
        self.tasks = [
            asyncio.create_task(charger.run(self.stop_event, gate)) for charger in self.chargers
        ]
        self._sweeper = asyncio.create_task(self._sweep_forever())
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(ready_timeout):
                # One poll over thousands of chargers is cheaper than a waiter for each.
                while not all(c.ready.is_set() or c.failures for c in self.chargers):  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
        return sum(charger.ready.is_set() for charger in self.chargers)

    async def open_loop(self, rate: float, duration: float, probe_rate: float = 0.0) -> None:
        """Offer `rate` calls/s for `duration` seconds whatever the answers (open loop)."""
        loop = asyncio.get_running_loop()
        ready = [charger for charger in self.chargers if charger.ready.is_set()]
        if not ready or rate <= 0:
            await asyncio.sleep(duration)
            return
        probe_every = max(2, round(rate / probe_rate)) if probe_rate > 0 else 0
        start = loop.time()
        end, sent, index = start + duration, 0, 0
        while (now := loop.time()) < end:
            due = int((now - start) * rate) - sent
            for _ in range(max(0, due)):
                lag = now - (start + sent / rate)
                self.stats.max_lag = max(self.stats.max_lag, lag)
                if probe_every and sent % probe_every == 0:
                    charger = ready[0]
                else:
                    charger, index = ready[index % len(ready)], index + 1
                if charger.ready.is_set():
                    await charger.send_next()
                sent += 1
            await asyncio.sleep(max(0.0, start + (sent + 1) / rate - loop.time()))

    async def closed_loop(self, duration: float) -> None:
        """Every charger sends its next call as soon as the last is answered (saturation)."""
        ready = [charger for charger in self.chargers if charger.ready.is_set()]
        for charger in ready:
            charger.looping = True
            await charger.send_next()
        await asyncio.sleep(duration)
        for charger in ready:
            charger.looping = False

    async def settle(self, timeout: float) -> None:
        """Wait for the answers still in flight (or their timeouts)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while any(charger.in_flight for charger in self.chargers):  # noqa: ASYNC110
                    await asyncio.sleep(0.05)

    async def stop(self) -> None:
        self.stop_event.set()
        if self._sweeper is not None:
            self._sweeper.cancel()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(10):
                await asyncio.gather(*self.tasks, return_exceptions=True)
        for task in self.tasks:
            task.cancel()

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            now = time.perf_counter()
            for charger in self.chargers:
                if charger.in_flight:
                    charger.sweep(now)


def _basic_auth(identity: str, password: str | None) -> dict[str, str] | None:
    """OCPP 1.6 security profile 1: HTTP Basic, username = identity."""
    if password is None:
        return None
    token = base64.b64encode(f"{identity}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


async def _wait(event: asyncio.Event, seconds: float) -> bool:
    """Sleep `seconds` unless `event` is set first; True when it was set."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()
    return event.is_set()


async def _first(*awaitables: Any) -> None:
    """Return as soon as any of these completes; the rest are cancelled (tasks are kept)."""
    tasks = [
        item if isinstance(item, asyncio.Task) else asyncio.ensure_future(item)
        for item in awaitables
    ]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task, item in zip(tasks, awaitables, strict=True):
            if task is not item:
                task.cancel()


# `ocpplab simulate`


# The `ocpplab simulate URL` subcommand


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Run simulated OCPP 1.6 chargers against any central system. Each one answers every "
        "central-system call; --behaviour makes it reject, fail or stay silent."
    )
    parser.add_argument("url", help="central-system URL; the identity is appended (ws://h/ocpp/)")
    parser.add_argument("--chargers", type=int, default=1, help="how many chargers [1]")
    parser.add_argument("--identity-prefix", default="sim-", help="identities are PREFIX1… [sim-]")
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="calls per second in aggregate, open loop; 0: each scenario's own pace [0]",
    )
    parser.add_argument("--duration", type=float, default=None, help="seconds; default: until ^C")
    parser.add_argument("--scenario", choices=SCENARIOS, default="session", help="[session]")
    parser.add_argument("--behaviour", choices=BEHAVIOURS, default="accept", help="[accept]")
    parser.add_argument(
        "--connectors", type=int, default=1, help="connectors of each charger, 1 to 100 [1]"
    )
    parser.add_argument(
        "--fault",
        action="append",
        choices=sorted(FAULTS),
        default=[],
        metavar="CHECK_ID",
        help="misbehave so that this guided check fails (again for more; see below)",
    )
    parser.epilog = (
        "--scenario guided: the charger does nothing by itself but boot and send heartbeats; "
        "the guided checks (ocpplab check) plug, unplug, present a card and cut its power. "
        "Faults, by the check each breaks: "
        + "; ".join(f"{check_id}: {text}" for check_id, text in sorted(FAULTS.items()))
    ).replace("%", "%%")
    parser.add_argument(
        "--meter-interval", type=float, default=5.0, help="seconds between MeterValues [5]"
    )
    parser.add_argument("--password", default=None, help="HTTP Basic auth password (profile 1)")
    parser.add_argument("--call-timeout", type=float, default=10.0, help="seconds [10]")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    replay = parser.add_argument_group(
        "replay a recording", "play a recorded charger's side instead of a scenario"
    )
    replay.add_argument(
        "--replay", metavar="FILE", default=None, help="a recording (NDJSON) to play"
    )
    replay.add_argument(
        "--speed", type=float, default=1.0, help="play the recorded spacing this much faster [1]"
    )
    replay.add_argument(
        "--identity", default=None, help="connect as this identity [the recording's]"
    )
    replay.add_argument("--session", default=None, help="the recorded session to play [the first]")


def run(args: argparse.Namespace) -> int:
    """`ocpplab simulate URL …`: a recording replayed, or chargers run with a summary."""
    if args.replay is not None:
        from ocpplab.tools import replay

        return replay.run(args)
    return run_async(_simulate(args))


def run_async(main: Coroutine[Any, Any, int]) -> int:
    """Run on uvloop when it is installed (as uvicorn does), else on asyncio's loop."""
    factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    with contextlib.suppress(ImportError):
        import uvloop

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)


async def _simulate(args: argparse.Namespace) -> int:
    pace: Pace = "open" if args.rate > 0 else "natural"
    fleet = Fleet(
        args.url,
        args.chargers,
        prefix=args.identity_prefix,
        scenario=args.scenario,
        behaviour=args.behaviour,
        faults=frozenset(args.fault),
        connectors=args.connectors,
        timing=Timing(meter_interval=args.meter_interval),
        pace=pace,
        call_timeout=args.call_timeout,
        password=args.password,
        ssl_context=_client_ssl(args.url),
    )
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError):
        loop.add_signal_handler(signal.SIGINT, fleet.stop_event.set)
    progress = asyncio.create_task(_progress(fleet.stats))
    try:
        ready = await fleet.start(ready_timeout=max(10.0, args.chargers / 50))
        if ready == 0:
            reason = getattr(fleet.chargers[0], "last_error", "no charger finished booting")
            print(f"\nocpplab simulate: no charger could connect: {reason}", file=sys.stderr)
            return 1
        duration = args.duration if args.duration is not None else math.inf
        work = fleet.open_loop(args.rate, duration) if pace == "open" else asyncio.sleep(duration)
        await _first(work, fleet.stop_event.wait())
        fleet.stats.ended = time.perf_counter()
        await fleet.settle(args.call_timeout)
        summary = fleet.stats.summary()
    finally:
        progress.cancel()
        await fleet.stop()
    if sys.stderr.isatty():
        print(file=sys.stderr)
    report(summary, as_json=args.json)
    return 0


async def _progress(stats: Stats) -> None:
    tty = sys.stderr.isatty()
    every = 1.0 if tty else 10.0
    while True:
        await asyncio.sleep(every)
        s = stats.summary()
        line = (
            f"{s['duration_s']:7.1f} s  connected {s['connected']}/{s['chargers']}  "
            f"sent {s['sent']}  answered {s['answered']}  errors {s['errors']}  "
            f"timeouts {s['timeouts']}  p99 {s['rtt_ms']['p99']} ms"
        )
        print(("\r" + line) if tty else line, end="" if tty else "\n", file=sys.stderr, flush=True)


def report(summary: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(summary, indent=2))
        return
    rtt = summary["rtt_ms"]
    rows = [
        ("chargers connected", f"{summary['connected']} of {summary['chargers']}"),
        ("duration", f"{summary['duration_s']} s"),
        ("calls sent / answered", f"{summary['sent']} / {summary['answered']}"),
        ("answered calls/s", f"{summary['answered_per_s']}"),
        ("errors / timeouts", f"{summary['errors']} / {summary['timeouts']}"),
        ("central-system calls answered", f"{summary['central_calls_answered']}"),
        (
            "round trip p50/p90/p99/max",
            f"{rtt['p50']} / {rtt['p90']} / {rtt['p99']} / {rtt['max']} ms",
        ),
    ]
    print("\n" + "\n".join(f"{name:32} {value}" for name, value in rows))


def _client_ssl(url: str) -> ssl.SSLContext | None:
    return ssl.create_default_context() if url.startswith("wss://") else None
