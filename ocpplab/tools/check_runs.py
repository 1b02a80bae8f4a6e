"""Runs guided checks (`ocpplab.core.checks.Run`) against a connected charger.

The runner is the I/O around the pure engine: it watches the charger's events on the broker
(as a page does, re-announcing itself so the gateway keeps publishing frames), sends the
engine's calls through `CentralSystem.call`, sets and restores answer rules, asks the person
(a page's or terminal's Done / Can't do this, or a simulated charger's `actor` that does it),
and publishes the report as it changes: to the charger's pages as a `CheckProgress` event and
to the broker (`checks_key`, kept `REPORT_TTL` s) so any worker answers `GET …/checks`.

One run per charger, `MAX_RUNS` per process. The person's answer rules are snapshot at the
start and restored after each check that changed them, at an abort, and when a run ends for
any reason (also when the runner itself fails).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from ocpplab.broker.base import Broker, Signal
from ocpplab.broker.keys import (
    check_commands_channel,
    checks_key,
    commands_channel,
    events_channel,
)
from ocpplab.core.checks import (
    Answer,
    ApplyRuleEffect,
    AskPersonEffect,
    Catalogue,
    Context,
    CutEffect,
    Effect,
    RestoreRulesEffect,
    Run,
    Seen,
    SendCallEffect,
    full_report,
)
from ocpplab.core.clock import Clock
from ocpplab.core.connection import WATCH_TTL
from ocpplab.core.errors import (
    BrokerError,
    CallTimeout,
    ChargerOffline,
    NotFound,
    OcpplabError,
    RunInProgress,
)
from ocpplab.core.messages import (
    CheckAbort,
    CheckAnswer,
    CheckProgress,
    Connected,
    Disconnected,
    FrameEvent,
    Watch,
    decode_command,
    decode_event,
)
from ocpplab.core.responder import ResponderSettings, rule_from_json
from ocpplab.server.central import CentralSystem

logger = logging.getLogger("ocpplab.tools.check_runs")

Actor = Callable[[str, dict[str, Any]], Awaitable[bool]]
MAX_RUNS = 8
REPORT_TTL = 3600.0
# Seconds between progress events while steps change fast (a report of every check and
# step goes to every page each time); a question for the person goes at once.
PUBLISH_EVERY = 1.0
MAX_DEPTH_FRAME = 100_000  # characters of a frame parsed for a check (longer: payload None)


def seen_from(event: FrameEvent | Connected | Disconnected, now: float) -> Seen:
    """What a check sees of a page event."""
    if isinstance(event, Connected):
        return Seen("event", "connected", at=now)
    if isinstance(event, Disconnected):
        return Seen("event", "disconnected", at=now)
    payload: Any = None
    if not event.truncated and len(event.raw) <= MAX_DEPTH_FRAME:
        with contextlib.suppress(ValueError, RecursionError):
            frame = json.loads(event.raw)
            if isinstance(frame, list):
                if event.type == "CALL" and len(frame) > 3:
                    payload = frame[3]
                elif event.type == "CALLRESULT" and len(frame) > 2:
                    payload = frame[2]
                elif event.type == "CALLERROR" and len(frame) > 3:
                    payload = {"errorCode": frame[2], "errorDescription": frame[3]}
    return Seen(event.dir, event.type, event.action, event.unique_id, payload, now)


@dataclasses.dataclass
class ActiveRun:
    identity: str
    run: Run
    charger: dict[str, str | None]
    inputs: asyncio.Queue[Callable[[], None]]
    task: asyncio.Task[None] | None = None
    rules: ResponderSettings | None = None
    actor: Actor | None = None

    def report(self) -> dict[str, Any]:
        return full_report(self.run, self.identity, self.charger)


class CheckRuns:
    """The check runs of this process: at most one per charger, `MAX_RUNS` in all."""

    def __init__(
        self, central: CentralSystem, broker: Broker, catalogue: Catalogue, clock: Clock
    ) -> None:
        self.central = central
        self.broker = broker
        self.catalogue = catalogue
        self.clock = clock
        self.runs: dict[str, ActiveRun] = {}
        # Who may do a person's act for a charger (the dashboard's simulated chargers).
        self.actors: Callable[[str], Actor | None] = lambda identity: None

    async def start(
        self,
        identity: str,
        only: list[str] | None = None,
        *,
        actor: Actor | None = None,
        id_tag: str | None = None,
        connector: int = 1,
        facts: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Start a run; its first report. Raises `NotFound` naming unknown check ids,
        `RunInProgress` when one runs for this charger (or too many run here), and
        `ChargerOffline` when no process holds the charger."""
        try:
            checks = self.catalogue.select(only)
        except KeyError as error:
            raise NotFound(f"no such check: {error.args[0]}") from None
        if not checks:
            raise NotFound("no checks chosen")
        active = self.runs.get(identity)
        if active is not None and not active.run.finished:
            raise RunInProgress(f"checks are already running on {identity}; abort them first")
        if sum(not run.run.finished for run in self.runs.values()) >= MAX_RUNS:
            raise RunInProgress(f"{MAX_RUNS} check runs are going on here already; try later")
        status = await self.central.status(identity)
        if not status.get("connected"):
            raise ChargerOffline(f"no charger {identity!r} is connected")
        context = Context(connector=connector)
        context.facts.update(facts or {})  # e.g. firmware_location, diagnostics_location
        if id_tag:
            context.id_tag = id_tag[:20]
        run = Run(
            self.catalogue,
            checks,
            context,
            self.clock,
            token_prefix=f"chk-{secrets.token_hex(3)}",
        )
        active = ActiveRun(identity, run, _charger_of(status), asyncio.Queue())
        active.actor = actor or self.actors(identity)
        active.rules = await self.central.responder_settings(identity)
        self.runs[identity] = active
        started = asyncio.Event()
        active.task = asyncio.create_task(
            self._drive(active, started), name=f"ocpplab-checks-{identity}"
        )
        await started.wait()
        return active.report()

    async def report(self, identity: str) -> dict[str, Any] | None:
        """The charger's current or last run's report, from this process or the broker."""
        active = self.runs.get(identity)
        if active is not None:
            return active.report()
        text = await self.broker.get(checks_key(identity))
        if not text:
            return None
        with contextlib.suppress(ValueError):
            report = json.loads(text)
            return report if isinstance(report, dict) else None
        return None

    async def answer(self, identity: str, token: str, done: bool) -> bool:
        """The person's Done (True) / Can't do this (False), to the run wherever it runs;
        False when no run of that charger is going on."""
        return await self._tell(identity, CheckAnswer(token=token[:100], done=done))

    async def abort(self, identity: str) -> bool:
        """Stop the charger's run wherever it runs; False when none is going on."""
        return await self._tell(identity, CheckAbort())

    async def _tell(self, identity: str, command: CheckAnswer | CheckAbort) -> bool:
        return await self.broker.publish(check_commands_channel(identity), command.encode()) > 0

    async def wait(self, identity: str) -> dict[str, Any] | None:
        active = self.runs.get(identity)
        if active is not None and active.task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(active.task)
        return await self.report(identity)

    async def stop_all(self) -> None:
        for active in list(self.runs.values()):
            if not active.run.finished:
                active.inputs.put_nowait(functools.partial(active.run.abort, "the server stopped"))
        tasks = [active.task for active in self.runs.values() if active.task is not None]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(10):
                await asyncio.gather(*tasks, return_exceptions=True)
        for task in tasks:
            task.cancel()

    # The driver loop

    async def _drive(self, active: ActiveRun, started: asyncio.Event) -> None:
        run, identity = active.run, active.identity
        helpers: set[asyncio.Task[Any]] = set()
        last_published = -1e9
        last_asked: str | None = None
        try:
            async with (
                self.broker.subscribe(events_channel(identity)) as events,
                self.broker.subscribe(check_commands_channel(identity)) as commands,
            ):
                reader = asyncio.create_task(self._read(active, events))
                listener = asyncio.create_task(self._listen(active, commands))
                helpers.add(reader)
                helpers.add(listener)
                watcher = asyncio.create_task(self._keep_watching(identity))
                helpers.add(watcher)
                run.start()
                started.set()
                while not run.finished:
                    for effect in run.take_effects():
                        helpers.add(asyncio.create_task(self._carry_out(active, effect)))
                    helpers = {task for task in helpers if not task.done()}
                    helpers |= {reader, listener, watcher}
                    now = self.clock.monotonic()
                    prompt = run.prompt
                    asked = prompt["token"] if prompt else None
                    if run.changed and (
                        now - last_published >= PUBLISH_EVERY or asked != last_asked
                    ):
                        last_asked = asked
                        run.changed = False
                        last_published = now
                        await self._publish(active)
                    deadline = run.next_deadline()
                    timeout = PUBLISH_EVERY if run.changed else None
                    if deadline is not None:
                        left = max(0.0, deadline - now)
                        timeout = left if timeout is None else min(timeout, left)
                    try:
                        async with asyncio.timeout(timeout):
                            item = await active.inputs.get()
                        item()
                    except TimeoutError:
                        pass
                    run.tick()
                for effect in run.take_effects():  # an abort's restore
                    if isinstance(effect, RestoreRulesEffect):
                        await self._restore(active)
        except Exception:
            log_failure(identity)
            if not run.finished:
                run.abort("the check runner failed; see the server log")
        finally:
            started.set()
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            with contextlib.suppress(Exception):
                await self._restore(active)
            with contextlib.suppress(Exception):
                await self._restore_keys(active)
            with contextlib.suppress(Exception):
                await self._publish(active)
            self.runs.pop(identity, None)

    async def _read(self, active: ActiveRun, events: Any) -> None:
        while True:
            item = await events.get()
            if isinstance(item, Signal):
                continue
            event = decode_event(item)
            if isinstance(event, Connected):
                # A new connection is watched only briefly until someone says so: say so
                # now, or its first frames (a boot after a reset) go unseen.
                with contextlib.suppress(BrokerError):
                    channel = commands_channel(active.identity)
                    await self.broker.publish(channel, Watch().encode())
            if isinstance(event, FrameEvent | Connected | Disconnected):
                seen = seen_from(event, self.clock.monotonic())
                active.inputs.put_nowait(functools.partial(active.run.frame, seen))

    async def _listen(self, active: ActiveRun, commands: Any) -> None:
        while True:
            item = await commands.get()
            if isinstance(item, Signal):
                continue
            command = decode_command(item)
            if isinstance(command, CheckAnswer):
                answer = functools.partial(active.run.person, command.token, command.done)
                active.inputs.put_nowait(answer)
            elif isinstance(command, CheckAbort):
                active.inputs.put_nowait(functools.partial(active.run.abort, command.reason))

    async def _keep_watching(self, identity: str) -> None:
        while True:
            with contextlib.suppress(BrokerError):
                await self.broker.publish(commands_channel(identity), Watch().encode())
            await asyncio.sleep(WATCH_TTL / 3)

    async def _carry_out(self, active: ActiveRun, effect: Effect) -> None:
        run, identity = active.run, active.identity
        put = active.inputs.put_nowait
        if isinstance(effect, SendCallEffect):
            answer = await self._call(identity, effect)
            put(lambda: run.answered(effect.token, answer))
        elif isinstance(effect, ApplyRuleEffect):
            rule = rule_from_json(effect.rule) if effect.rule is not None else None
            with contextlib.suppress(OcpplabError):
                await self.central.set_rule(identity, effect.action, rule)
            put(lambda: run.done(effect.token))
        elif isinstance(effect, RestoreRulesEffect):
            await self._restore(active)
            put(lambda: run.done(effect.token))
        elif isinstance(effect, AskPersonEffect):
            if active.actor is not None:
                try:
                    done = await active.actor(effect.act, effect.detail)
                except Exception:
                    done = False
                put(lambda: run.person(effect.token, done))
        elif isinstance(effect, CutEffect):
            with contextlib.suppress(OcpplabError):
                await self.central.cut(identity, effect.seconds)
            put(functools.partial(run.done, effect.token))

    async def _call(self, identity: str, effect: SendCallEffect) -> Answer:
        try:
            outcome = await self.central.call(
                identity, effect.action, effect.payload, unique_id=effect.token
            )
        except ChargerOffline:
            return Answer("offline", unique_id=effect.token)
        except (CallTimeout, OcpplabError):
            return Answer("timeout", unique_id=effect.token)
        code = outcome.error.get("code") if outcome.error else None
        return Answer(
            outcome.outcome,
            outcome.payload,
            str(code) if code is not None else None,
            unique_id=effect.token,
        )

    async def _restore_keys(self, active: ActiveRun) -> None:
        """Configuration keys the catalogue's `prepare` changed for the whole run
        (`facts["restore_after_run"]`, e.g. MinimumStatusDuration) get their old values."""
        keys = active.run.context.facts.get("restore_after_run") or {}
        for key, value in list(keys.items())[:20]:
            payload = {"key": str(key)[:50], "value": str(value)[:500]}
            with contextlib.suppress(OcpplabError):
                await self.central.call(active.identity, "ChangeConfiguration", payload)

    async def _restore(self, active: ActiveRun) -> None:
        if active.rules is not None:
            await self.central.save_responder_settings(active.identity, active.rules)

    async def _publish(self, active: ActiveRun) -> None:
        report = active.report()
        text = json.dumps(report, separators=(",", ":"))
        with contextlib.suppress(BrokerError):
            await self.broker.set(checks_key(active.identity), text, REPORT_TTL)
            await self.broker.publish(
                events_channel(active.identity), CheckProgress(report=report).encode()
            )


def simulated_actors(simulations: Any) -> Callable[[str], Actor | None]:
    """Who does the person's part for a charger: the dashboard's simulated charger of that
    identity, when this process runs one (`dashboard_chargers.Simulations`)."""

    def actor_of(identity: str) -> Actor | None:
        running = simulations.running.get(identity)
        if running is None:
            return None
        charger = running.charger
        charger.guide()  # a run drives it from now on: no sessions of its own

        async def act(name: str, detail: dict[str, Any]) -> bool:
            done: bool = await charger.act(name, detail)
            return done

        return act

    return actor_of


def _charger_of(status: dict[str, Any]) -> dict[str, str | None]:
    state = status.get("state") if isinstance(status.get("state"), dict) else {}
    boot = state.get("boot") if isinstance(state, dict) else None
    boot = boot if isinstance(boot, dict) else {}

    def text(*keys: str) -> str | None:
        for key in keys:
            value = boot.get(key)
            if isinstance(value, str):
                return value[:50]
        return None

    return {
        "vendor": text("chargePointVendor", "vendor"),
        "model": text("chargePointModel", "model"),
        "firmware": text("firmwareVersion", "firmware"),
        "serial": text("chargePointSerialNumber", "chargeBoxSerialNumber", "serial"),
    }


def log_failure(identity: str) -> None:
    # No identity in the log at the default level (DESIGN.md); the traceback at debug.
    logger.error("a check run failed")
    logger.debug("check run of %r failed", identity, exc_info=True)
