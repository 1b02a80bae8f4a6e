"""The page's live socket, `WS /chargers/{identity}/live`, fed by the broker.

It subscribes to the identity's events, asks the gateway that holds the charger (wherever
it is) for a replay of recent frames, and pushes each event as an out-of-band HTML fragment
for the htmx websocket extension. Events that arrive faster than a person can read are sent
in batches; a page that cannot keep up loses events (and is told so), never the charger.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from typing import Any

from markupsafe import Markup
from starlette.websockets import WebSocket, WebSocketDisconnect

from ocpplab.broker import Signal, Subscription, commands_channel, events_channel
from ocpplab.gateway import WATCH_TTL, refuse
from ocpplab.identity import identity_problem
from ocpplab.origin import cross_site
from ocpplab.services import Services, services_of
from ocpplab.templating import render_block

logger = logging.getLogger("ocpplab.live")

BATCH_MAX = 200
# A page that falls behind (FLOOD_BATCH or more events waiting at once) gets at most 20
# updates a second; a page that keeps up gets every event the moment it arrives.
BATCH_PAUSE = 0.05
FLOOD_BATCH = 20
PAGE = "charger.html"
WRAPPERS = "_live.html"


async def serve_page_socket(websocket: WebSocket) -> None:
    services = services_of(websocket)
    identity = websocket.path_params["identity"]
    problem = identity_problem(identity, services.settings.max_identity_length)
    if problem:
        await refuse(websocket, 400, problem)
        return
    if cross_site(websocket, services.settings.public_url):
        await refuse(websocket, 403, "this live socket only serves pages of this site")
        return
    await websocket.accept()
    await PageSocket(services, websocket, identity).run()


class PageSocket:
    """One open page watching one identity."""

    def __init__(self, services: Services, websocket: WebSocket, identity: str) -> None:
        self.services = services
        self.websocket = websocket
        self.identity = identity
        self.page_id = uuid.uuid4().hex
        self.session: str | None = None
        self.seen: set[int] = set()
        self.log_started = False

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

    async def _watch(self, *, replay: bool) -> None:
        command: dict[str, Any] = {"op": "watch"}
        if replay:
            command["page"] = self.page_id
        with contextlib.suppress(Exception):
            await self.services.broker.publish(commands_channel(self.identity), json.dumps(command))

    async def _keepalive(self) -> None:
        while True:
            await asyncio.sleep(WATCH_TTL / 3)
            await self._watch(replay=False)

    async def _pump(self, events: Subscription) -> None:
        while True:
            batch = [await events.get()]
            while len(batch) < BATCH_MAX and (item := events.get_nowait()) is not None:
                batch.append(item)
            html = "".join([await self._render_safely(item) for item in batch])
            if html and not await self._send(html):
                return
            if len(batch) >= FLOOD_BATCH:
                await asyncio.sleep(BATCH_PAUSE)

    async def _send(self, html: str) -> bool:
        try:
            await self.websocket.send_text(html)
        except (WebSocketDisconnect, RuntimeError, OSError):
            return False
        return True

    async def _render_safely(self, item: str | Signal) -> str:
        """One bad event must not end the page's live updates."""
        try:
            return await self._render(item)
        except Exception:
            logger.exception("rendering a live update failed")
            return ""

    async def _render(self, item: str | Signal) -> str:
        if item is Signal.INTERRUPTED:
            return self._live_status(False, "Live updates interrupted: the broker is unreachable")
        if item is Signal.RESUMED:
            await self._watch(replay=False)
            return self._live_status(True, "Live updates: on") + self._log(
                {
                    "kind": "gap",
                    "at": "",
                    "text": "Live updates resumed: frames may be missing here",
                }
            )
        if item is Signal.OVERFLOW:
            return self._log(
                {"kind": "gap", "at": "", "text": "This page fell behind: some frames were skipped"}
            )
        try:
            event = json.loads(item)
        except ValueError:
            return ""
        return await self.render_event(event)

    async def render_event(self, event: dict[str, Any]) -> str:
        kind = event.get("kind")
        if kind == "replay":
            if event.get("page") != self.page_id:
                return ""
            return self._render_replay(event) + self._render_extra(event)
        if kind in {"connected", "disconnected"}:
            if kind == "connected" and event.get("session") != self.session:
                self.session, self.seen = event.get("session"), set()
                await self._watch(replay=False)
            return self._status(event) + self._log(event)
        if kind == "state":
            return self._block("state_panel", state=event["state"])
        if kind in {"settings", "answer_refused"}:
            return self._render_extra(event)
        seq = event.get("seq")
        if isinstance(seq, int):
            if seq in self.seen:
                return ""
            self._remember(seq)
        html = self._log(event) if kind != "sent" else ""
        if kind == "held":
            html += self._held(event)
        elif kind == "released":
            html += self._wrap("held_removed", unique_id=event["unique_id"])
        return html + self._render_extra(event)

    def _remember(self, seq: int) -> None:
        """Note a rendered event so a replay does not show it twice; bounded by the replay."""
        self.seen.add(seq)
        window = max(self.services.settings.replay_size, 1)
        if len(self.seen) > 2 * window:
            newest = max(self.seen)
            self.seen = {item for item in self.seen if item > newest - window}

    def _render_replay(self, replay: dict[str, Any]) -> str:
        connected = replay["connected"]
        self.session = connected.get("session")
        parts = [self._status(connected), self._block("state_panel", state=replay["state"])]
        fresh = []
        for event in replay["events"]:
            seq = event.get("seq")
            if event.get("session") == self.session and seq not in self.seen:
                self._remember(seq)
                fresh.append(event)
        parts.append(self._log_many(fresh))
        parts.extend(self._held(event) for event in replay.get("held", []))
        return "".join(parts)

    def _render_extra(self, event: dict[str, Any]) -> str:
        """Fragments that other panels (Configure, Operations) derive from an event."""
        renderer = self.services.extra_renderers.get(str(event.get("kind")))
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

    def _log(self, event: dict[str, Any]) -> str:
        return self._log_many([event])

    def _log_many(self, events: list[dict[str, Any]]) -> str:
        if not events:
            return ""
        entries = "".join(self._block("log_entry", event=event) for event in reversed(events))
        # The placeholder is removed once per page: htmx reports an error for an
        # out-of-band target that is already gone.
        first, self.log_started = not self.log_started, True
        return self._wrap("log_prepend", entries=Markup(entries), first=first)

    def _held(self, event: dict[str, Any]) -> str:
        card = self._block("held_card", event=event)
        return self._wrap("held_prepend", card=Markup(card))

    def _status(self, event: dict[str, Any]) -> str:
        return self._block("status", status=status_from_event(event))

    def _live_status(self, ok: bool, text: str) -> str:
        return self._block("live_status", live_ok=ok, live_text=text, oob=True)

    def _wrap(self, block: str, **context: Any) -> str:
        """An out-of-band wrapper from `_live.html`: where a fragment goes on the page."""
        return render_block(self.services.templates, WRAPPERS, block, **context)


def status_from_event(event: dict[str, Any] | None) -> dict[str, Any]:
    """The status line's content from a connected/disconnected event or a presence record."""
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
        }
    since = event.get("at") or event.get("connected_since") or ""
    remote = f" from {event['remote']}" if event.get("remote") else ""
    return {
        "state": "connected",
        "text": "Connected",
        "detail": f"since {since}{remote}, subprotocol {event.get('subprotocol') or 'none'}",
        "warnings": event.get("warnings") or [],
    }
