"""The page's live socket, `WS /chargers/{identity}/live`, fed by the broker.

It subscribes to the identity's events, asks the gateway that holds the charger (wherever
it is) for a replay of recent frames, and pushes each event as an out-of-band HTML fragment
for the htmx websocket extension. Events that arrive faster than a person can read are sent
in batches; a page that cannot keep up loses events (and is told so), never the charger.

The log is light on the wire (`ocpplab.web.log`): a compact line per exchange, its outcome
swapped in when the answer comes, and the frames only when the page asks for them over this
same socket (it sends `{"log": "expand", "n": …}`, `{"log": "search", "q": …}` and
`{"log": "forget", "upto": …}`, see static/log.js), so that what the page asks is answered by
the process that holds its lines, wherever the charger is. The socket is compressed
(permessage-deflate) when the browser offers it: uvicorn's `ws_per_message_deflate` is on by
default and `server.handshake` removes the offer only for chargers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import Any

from markupsafe import Markup
from starlette.websockets import WebSocket, WebSocketDisconnect

from ocpplab.broker.base import Signal, Subscription
from ocpplab.broker.keys import commands_channel, events_channel
from ocpplab.core.connection import WATCH_TTL
from ocpplab.core.errors import InvalidRule
from ocpplab.core.frames import encodable, loads
from ocpplab.core.identity import identity_problem
from ocpplab.core.messages import (
    AnswerRefused,
    CheckProgress,
    Connected,
    Disconnected,
    Event,
    Gap,
    Held,
    Notice,
    RecordingState,
    Released,
    ReplayEvent,
    SequencePosition,
    SettingsChanged,
    StateChanged,
    Watch,
    decode_event,
)
from ocpplab.core.ratelimit import RateLimit
from ocpplab.core.responder import ResponderSettings, format_time
from ocpplab.logs import log_failure
from ocpplab.server.gateway import refuse
from ocpplab.web.log import Line, PageLog, api_request, call_payload
from ocpplab.web.services import Services, services_of
from ocpplab.web.templating import render_block

logger = logging.getLogger("ocpplab.web.live")

BATCH_MAX = 200
# A page that falls behind (FLOOD_BATCH or more events waiting at once) gets at most 20
# updates a second; a page that keeps up gets every event the moment it arrives.
BATCH_PAUSE = 0.05
FLOOD_BATCH = 20
PAGES_PER_SOURCE = 32
REPLAY_SLICE = 25  # log entries rendered and sent at a time when a page opens
PAGE = "charger.html"
LOG = "_log.html"
WRAPPERS = "_live.html"
CHECKS_PANEL = "_checks.html"
ASKS_PER_SECOND = 20.0  # what a page may ask of its socket (expand, search): burst twice that
MAX_ASK = 1024  # characters of one message from a page


async def serve_page_socket(websocket: WebSocket) -> None:
    services = services_of(websocket)
    identity = websocket.path_params["identity"]
    problem = identity_problem(identity, services.settings.max_identity_length)
    if problem:
        await refuse(websocket, 400, problem)
        return
    client = websocket.client
    source = client.host if client else "unknown"
    pages = services.open_pages
    if pages.total() >= services.settings.max_pages or pages[source] >= PAGES_PER_SOURCE:
        # Each open page holds a subscription, a queue and two tasks: bounded in number.
        await refuse(
            websocket,
            503,
            "too many pages are open on this server (OCPPLAB_MAX_PAGES, at most "
            f"{PAGES_PER_SOURCE} from one address); close some and reload",
        )
        return
    pages[source] += 1
    try:
        await websocket.accept()
        await PageSocket(services, websocket, identity).run()
    finally:
        pages[source] -= 1
        if not pages[source]:
            del pages[source]


class PageSocket:
    """One open page watching one identity."""

    def __init__(self, services: Services, websocket: WebSocket, identity: str) -> None:
        self.services = services
        self.websocket = websocket
        self.identity = identity
        self.page_id = uuid.uuid4().hex
        self.session: str | None = None
        self.dialect: str | None = None  # the name of the charger's dialect, once known
        self.seen: set[int] = set()
        self.log = PageLog()
        self._connected_shown = ""  # the session whose Connected line the log has
        self._pending: list[str] = []  # rendered fragments not sent yet
        self._new_lines: list[Line] = []  # log lines not sent yet
        self._changed: dict[int, Line] = {}  # sent lines whose outcome changed since
        self._sending = asyncio.Lock()  # the pump and the page's asks both send
        self._asks = RateLimit(ASKS_PER_SECOND, services.clock.monotonic())

    async def run(self) -> None:
        broker = self.services.broker
        async with broker.subscribe(events_channel(self.identity)) as events:
            await self._watch(replay=True)
            await self._send(self._live_status(True, "Live updates: on"))
            pump = asyncio.create_task(self._pump(events))
            keepalive = asyncio.create_task(self._keepalive())
            try:
                await self._wait_for_close()
            finally:
                for task in (pump, keepalive):
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task

    async def _wait_for_close(self) -> None:
        while True:
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            wanted = isinstance(text, str) and len(text) <= MAX_ASK
            if wanted and self._asks.take(self.services.clock.monotonic()):
                try:
                    await self._answer_ask(str(text))
                except Exception:
                    log_failure(logger, "answering a page's log failed")

    async def _answer_ask(self, text: str) -> None:
        """What the page's log asks: a line's frames, a search, or to forget old lines.

        Anything else (htmx's own messages, garbage) is ignored: this socket is not a way
        to change anything.
        """
        try:
            ask = loads(text)
        except ValueError:
            return
        if not isinstance(ask, dict):
            return
        what, number = ask.get("log"), ask.get("n", ask.get("upto"))
        if what == "expand" and isinstance(number, int):
            await self._send(self._detail(number))
        elif what == "search" and isinstance(ask.get("q"), str):
            query = ask["q"]
            numbers = self.log.search(query)
            await self._send(self._log_block("log_found", query=query, numbers=numbers))
        elif what == "forget" and isinstance(number, int):
            self.log.forget(number)
            self._changed = {n: line for n, line in self._changed.items() if n > number}

    async def _watch(self, *, replay: bool) -> None:
        """Announce the page (and with `replay`, ask for the recent frames). When no process
        holds the charger, the replay is its last connection's history, if kept."""
        command = Watch(page=self.page_id if replay else None)
        try:
            heard = await self.services.broker.publish(
                commands_channel(self.identity), command.encode()
            )
        except Exception:
            return
        if replay and not heard:
            with contextlib.suppress(Exception):
                history = await self.services.central.history(self.identity, page=self.page_id)
                if history is not None:
                    await self._send_replay(history)
                    await self._flush()

    async def _keepalive(self) -> None:
        while True:
            await asyncio.sleep(WATCH_TTL / 3)
            await self._watch(replay=False)

    async def _pump(self, events: Subscription) -> None:
        while True:
            batch = [await events.get()]
            while len(batch) < BATCH_MAX and (item := events.get_nowait()) is not None:
                batch.append(item)
            for item in batch:
                html = await self._render_safely(item)  # may send a replay's slices itself
                self._pending.append(html)
            if not await self._flush():
                return
            if len(batch) >= FLOOD_BATCH:
                await asyncio.sleep(BATCH_PAUSE)

    async def _send(self, html: str) -> bool:
        """Send a fragment; False when the page is gone.

        A fragment that UTF-8 cannot encode (a lone surrogate a charger sent as `\\ud800`
        in a JSON string, rendered into it) would fail to send, and the failure would end
        the page's live updates: it goes with the character shown as its escape instead.
        The server refuses such text before sending anything, so sending it again is safe.
        """
        try:
            async with self._sending:
                try:
                    await self.websocket.send_text(html)
                except UnicodeEncodeError:
                    await self.websocket.send_text(encodable(html))
        except (WebSocketDisconnect, RuntimeError, OSError):
            return False
        return True

    async def _flush(self) -> bool:
        """Send what was rendered and not sent yet; False when the page is gone.

        New lines go as one append to the log, rendered now, so that a call answered in
        the same batch goes once, answered; lines sent before get their outcome swapped.
        """
        html = "".join(self._pending) + self._render_lines()
        self._pending = []
        return not html or await self._send(html)

    def _render_lines(self) -> str:
        new, changed = self._new_lines, self._changed
        self._new_lines, self._changed = [], {}
        kept = self.log.lines
        html = "".join(
            self._log_block("log_outcome", line=line)
            for n, line in changed.items()
            if n in kept and line not in new
        )
        entries = "".join(
            self._log_block("log_line", line=line, hit=self.log.matches(line)) for line in new
        )
        if entries:
            html = self._wrap("log_append", entries=Markup(entries)) + html
        return html

    async def _render_safely(self, item: str | Signal) -> str:
        """One bad event must not end the page's live updates."""
        try:
            return await self._render(item)
        except Exception:
            log_failure(logger, "rendering a live update failed")
            return ""

    async def _render(self, item: str | Signal) -> str:
        if item is Signal.INTERRUPTED:
            return self._live_status(False, "Live updates interrupted: the broker is unreachable")
        if item is Signal.RESUMED:
            await self._watch(replay=False)
            return self._live_status(True, "Live updates: on") + self._gap(
                "Live updates resumed: frames may be missing here"
            )
        if item is Signal.OVERFLOW:
            return self._gap("This page fell behind: some frames were skipped")
        event = decode_event(item)
        return "" if event is None else await self.render_event(event)

    def _gap(self, text: str) -> str:
        return self._log(Gap(text=text, at=format_time(self.services.clock.now())))

    async def render_event(self, event: Event) -> str:
        if isinstance(event, ReplayEvent):
            if event.page != self.page_id:
                return ""
            await self._send_replay(event)
            return self._render_extra(event)
        if isinstance(event, Connected | Disconnected):
            if isinstance(event, Connected):
                self.dialect = event.dialect
            if isinstance(event, Connected) and event.session != self.session:
                self.session, self.seen = event.session, set()
                await self._watch(replay=False)
            if isinstance(event, Connected):
                self._connected_shown = event.session
            return self._status(event) + self._log(event)
        if isinstance(event, RecordingState):
            return self._recording(event)
        if isinstance(event, CheckProgress):
            return self._checks(event)
        if isinstance(event, StateChanged):
            return self._state(event.state)
        if isinstance(event, SettingsChanged):
            return self._rules(event) + self._render_extra(event)
        if isinstance(event, AnswerRefused | SequencePosition):
            return self._render_extra(event)
        if event.seq:
            if event.seq in self.seen:
                return ""
            self._remember(event.seq)
        html = self._log(event)
        if isinstance(event, Held):
            html += self._held(event)
        elif isinstance(event, Released):
            html += self._wrap("held_removed", unique_id=event.unique_id)
        return html + self._render_extra(event)

    def _remember(self, seq: int) -> None:
        """Note a rendered event so a replay does not show it twice; bounded by the replay."""
        self.seen.add(seq)
        window = max(self.services.settings.replay_size, 1)
        if len(self.seen) > 2 * window:
            newest = max(self.seen)
            self.seen = {item for item in self.seen if item > newest - window}

    async def _send_replay(self, replay: ReplayEvent) -> None:
        """Render a replay a slice at a time, sending each before rendering the next.

        What was rendered before it goes first, so the page sees events in order; between
        slices other chargers and pages get the event loop.
        """
        await self._flush()
        connected = replay.connected
        self.session, self.dialect = connected.session, connected.dialect
        self._pending += [
            self._status(connected),
            self._state(replay.state),
        ]
        if connected.session and connected.session != self._connected_shown:
            self._connected_shown = connected.session
            self._log(connected)  # the log starts with the connection its frames belong to
        fresh = []
        for event in replay.events:
            if event.session == self.session and event.seq not in self.seen:
                self._remember(event.seq)
                fresh.append(event)
        for start in range(0, len(fresh), REPLAY_SLICE):
            for event in fresh[start : start + REPLAY_SLICE]:
                self._log(event)
            if not await self._flush():
                return
            await asyncio.sleep(0)
        self._pending.extend(self._held(event) for event in replay.held)
        closed = next((e for e in reversed(replay.events) if isinstance(e, Disconnected)), None)
        if closed is not None and closed.session == self.session:
            self._pending.append(self._status(closed))  # a history: how it ended

    def _render_extra(self, event: Event) -> str:
        """Fragments that other panels (Configure, Operations) derive from an event."""
        renderer = self.services.extra_renderers.get(event.kind)
        return renderer(self, event) if renderer else ""

    # Fragments

    def _block(self, block: str, **context: Any) -> str:
        return render_block(
            self.services.templates,
            PAGE,
            block,
            identity=self.identity,
            connection=self.websocket,
            **context,
        )

    def _log_block(self, block: str, **context: Any) -> str:
        return render_block(
            self.services.templates,
            LOG,
            block,
            identity=self.identity,
            connection=self.websocket,
            **context,
        )

    def _log(self, event: Event) -> str:
        """Note an event for the log; its lines are rendered when the batch is sent."""
        new, changed = self.log.add(event)
        self._new_lines += new
        for line in changed:
            self._changed[line.n] = line
        return ""

    def _detail(self, number: int) -> str:
        """An expanded line: its frames, or that this page no longer keeps them."""
        line = self.log.line(number)
        requests = [api_request(line, frame) for frame in line.frames] if line else []
        payload = call_payload(line) if line else None
        return self._log_block(
            "log_detail", n=number, line=line, requests=requests, payload=payload
        )

    def _rules(self, event: SettingsChanged) -> str:
        """The strip of active answer rules, where the page has one (`rules_strip`)."""
        try:
            responder = ResponderSettings.from_json(event.settings)
            return self._block("rules_strip", responder=responder)
        except (KeyError, InvalidRule):  # charger.html without the strip; odd settings
            return ""

    def _recording(self, event: RecordingState) -> str:
        settings = self.services.settings
        state = {"on": event.on, "started": event.started, "truncated": event.truncated}
        html = self._block(
            "recording_panel",
            recording=state,
            recording_limit=settings.recording_limit,
            recording_ttl=settings.recording_ttl,
        )
        if event.truncated:
            text = "Recording stopped: it reached its limit (OCPPLAB_RECORDING_LIMIT)"
            html += self._log(Notice(text=text, at=event.at))
        return html

    def _state(self, state: dict[str, Any]) -> str:
        template = self.services.state_template(self.dialect)
        return self._block("state_panel", state=state, state_template=template)

    def _checks(self, event: CheckProgress) -> str:
        return render_block(
            self.services.templates,
            CHECKS_PANEL,
            "checks_panel",
            identity=self.identity,
            connection=self.websocket,
            check_report=event.report,
            check_groups=self.services.dialect.checks.grouped(),
            oob=True,
        )

    def _held(self, event: Held) -> str:
        card = self._block("held_card", event=event)
        return self._wrap("held_prepend", card=Markup(card))

    def _status(self, event: Connected | Disconnected) -> str:
        return self._block("status", status=status_from_event(event))

    def _live_status(self, ok: bool, text: str) -> str:
        return self._block("live_status", live_ok=ok, live_text=text, oob=True)

    def _wrap(self, block: str, **context: Any) -> str:
        """An out-of-band wrapper from `_live.html`: where a fragment goes on the page."""
        return render_block(self.services.templates, WRAPPERS, block, **context)


def status_from_event(event: Connected | Disconnected | dict[str, Any] | None) -> dict[str, Any]:
    """The status line's content from a connected/disconnected event or a presence record."""
    if isinstance(event, Connected | Disconnected):
        event = event.to_json()
    if event is None:
        return {
            "state": "waiting",
            "text": "Waiting for the charger to connect",
            "detail": "",
            "warnings": [],
        }
    if event.get("kind") == "disconnected":
        reason = event.get("reason") or ""
        replaced = reason.startswith("replaced")
        return {
            "state": "replaced" if replaced else "disconnected",
            "text": "Replaced by a new connection" if replaced else "Disconnected",
            "detail": f"close code {event.get('code')}" + (f", {reason}" if reason else ""),
            "warnings": [],
            "at": event.get("at") or "",
            "code": event.get("code"),
            "reason": reason,
        }
    since = event.get("at") or event.get("connected_since") or ""
    remote = f" from {event['remote']}" if event.get("remote") else ""
    return {
        "state": "connected",
        "text": "Connected",
        "detail": f"since {since}{remote}, subprotocol {event.get('subprotocol') or 'none'}"
        + _tls_detail(event.get("tls")),
        "warnings": event.get("warnings") or [],
        "at": since,
        "remote": event.get("remote"),
        "subprotocol": event.get("subprotocol"),
        "tls": event.get("tls"),
    }


def _tls_detail(tls: Any) -> str:
    """The TLS part of the status line, which is how a person trying security profiles 2
    and 3 sees what a charger negotiated; empty without TLS (or behind a TLS proxy)."""
    if not isinstance(tls, dict):
        return ""
    text = f", over {tls.get('version')} ({tls.get('cipher')})"
    subject = tls.get("client_subject")
    return text + (f", client certificate {subject}" if subject else "")
