"""Replaying a recording from the dashboard: a charger played back inside this server.

The "Replay as a charger" form on `/recordings` uploads a recording (read in memory, like
Open) and starts `tools.replay`'s engine against this very server, under a fresh identity
or the one asked for, then opens that charger's page: the recorded calls arrive again with
their spacing, answered by today's rules. At most `MAX_RUNNING` replays run at once per
process (a public lab must not be made to run hundreds); each ends with its recording.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from ocpplab.config import Settings
from ocpplab.core.identity import identity_problem
from ocpplab.logs import log_failure
from ocpplab.tools.dashboard_chargers import Simulations
from ocpplab.tools.replay import MAX_SPEED, ReplayEngine, replay
from ocpplab.web.recordings import Refused, page, read_upload, upload_slot, uploads
from ocpplab.web.services import services_of

logger = logging.getLogger("ocpplab.tools.dashboard_replays")

MAX_RUNNING = 10


class Replays:
    """The replays this process runs for the dashboard."""

    def __init__(self, settings: Settings, simulations: Simulations) -> None:
        self.settings = settings
        self.simulations = simulations  # for this server's own URL and TLS context
        self.running: dict[str, asyncio.Task[None]] = {}

    def start(self, engine: ReplayEngine, server: tuple[str, int]) -> None:
        identity = engine.report.identity
        url = self.simulations._url(server)
        task = asyncio.create_task(self._run(url, engine), name=f"ocpplab-replay-{identity}")
        self.running[identity] = task
        task.add_done_callback(lambda _: self.running.pop(identity, None))

    async def _run(self, url: str, engine: ReplayEngine) -> None:
        try:
            await replay(
                url,
                engine,
                password=self.settings.charger_password,
                ssl_context=self.simulations._ssl_context(),
            )
        except Exception:
            log_failure(logger, "a replayed charger stopped")

    async def stop_all(self) -> None:
        for task in list(self.running.values()):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


async def start_replay(request: Request) -> Response:
    """POST /recordings/replay: a recording file, an identity (optional) and a speed."""
    services = services_of(request)
    replays: Replays = request.app.state.replays
    try:
        if len(replays.running) >= MAX_RUNNING:
            raise Refused(503, f"{MAX_RUNNING} replays are running already; try again later.")
        if services.settings.charger_passwords:
            raise Refused(
                409,
                "Chargers need their own password here (OCPPLAB_CHARGER_PASSWORDS): replay "
                "from a terminal with ocpplab simulate URL --replay FILE --password …",
            )
        query = {"identity": "", "speed": "1"}
        with upload_slot(services):
            [(name, data)] = await uploads(request, ("recording",), query)
            recording = await read_upload(services, name, data)
        identity = query["identity"].strip() or f"replay-{secrets.token_hex(3)}"
        problem = identity_problem(identity, services.settings.max_identity_length)
        if problem:
            raise Refused(422, problem)
        try:
            speed = float(query.get("speed", "1") or "1")
        except ValueError:
            raise Refused(422, "The speed must be a number, such as 1 or 4.") from None
        if not 0 < speed <= MAX_SPEED:
            raise Refused(422, f"The speed must be above 0 and at most {MAX_SPEED:g}.")
        try:
            engine = ReplayEngine(recording, speed=speed, identity=identity)
        except ValueError as exc:
            raise Refused(422, f"{name} cannot be replayed: {exc}") from None
    except Refused as refused:
        return page(request, "recordings_index", status=refused.status, replay_error=str(refused))
    server = request.scope.get("server") or ("127.0.0.1", services.settings.port)
    replays.start(engine, server)
    url = request.url_for("charger_page", identity=identity)
    return RedirectResponse(str(url), status_code=303)


routes = [Route("/recordings/replay", start_replay, methods=["POST"], name="start_replay")]
