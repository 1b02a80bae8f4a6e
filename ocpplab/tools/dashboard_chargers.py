"""Simulated chargers started from the dashboard ("Simulate a charger").

They run inside the server process, as real websocket clients of the server's own bound
address, so a person without a charger watches a real session: every frame crosses the
same gateway, responder and page socket as a real charger's. Each gets a fresh identity
(`sim-` and six hex digits). They are few (`OCPPLAB_MAX_SIMULATED`), and each stops when
asked, when its page has not been watched for `idle_timeout` seconds, or at shutdown.

A stopped one can be started again under its identity (`restart`, the page's "Start it
again"), for as long as its history is kept (`OCPPLAB_HISTORY_TTL`): this process
remembers the last `REMEMBERED` identities it simulated, and starts no other.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import secrets
import ssl
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from ocpplab.config import Settings
from ocpplab.core.clock import Clock
from ocpplab.core.errors import NotFound, SimulationRefused
from ocpplab.server.gateway import Gateway
from ocpplab.tools.charger_model import Timing
from ocpplab.tools.fleet import SimulatedCharger, Stats
from ocpplab.web.errors import ANSWERED, path_identity, text_answer, text_errors

IDLE_TIMEOUT = 120.0  # seconds without a watching page before a simulated charger stops
UNSEEN_LIFETIME = 1800.0  # when another worker holds the charger, its watch is not visible here
CHECK_INTERVAL = 5.0
DASHBOARD_TIMING = Timing(meter_interval=5.0, samples=6, pause=5.0)
REMEMBERED = 64  # identities simulated lately that may be started again


@dataclasses.dataclass
class Running:
    charger: SimulatedCharger
    task: asyncio.Task[None]
    stop: asyncio.Event
    started: float
    last_watched: float


class Simulations:
    """The simulated chargers this process runs for the dashboard."""

    def __init__(self, settings: Settings, gateway: Gateway, clock: Clock) -> None:
        self.settings = settings
        self.gateway = gateway
        self.clock = clock
        self.limit = settings.max_simulated
        self.idle_timeout = IDLE_TIMEOUT
        self.running: dict[str, Running] = {}
        # identity -> when it last ran (monotonic; while it runs, when it started), oldest
        # first: at most REMEMBERED, each for history_ttl seconds after it stopped
        self.simulated: dict[str, float] = {}
        self._watchdog: asyncio.Task[None] | None = None

    def is_simulated(self, identity: str) -> bool:
        return identity in self.running

    def running_charger(self, identity: str) -> Running | None:
        """The simulated charger this process runs as `identity`, if any."""
        return self.running.get(identity)

    def restartable(self, identity: str) -> bool:
        """Whether `identity` is a simulated charger of this process's that stopped lately
        (so the page may offer to start it again)."""
        return identity not in self.running and self._remembered(identity)

    def _remembered(self, identity: str) -> bool:
        ran = self.simulated.get(identity)
        if ran is None:
            return False
        if identity in self.running or self.clock.monotonic() - ran < self.settings.history_ttl:
            return True
        del self.simulated[identity]
        return False

    def _remember(self, identity: str) -> None:
        self.simulated.pop(identity, None)
        self.simulated[identity] = self.clock.monotonic()
        excess = len(self.simulated) - REMEMBERED
        if excess > 0:  # the oldest that stopped; one that runs is remembered while it runs
            stopped = [name for name in self.simulated if name not in self.running]
            for name in stopped[:excess]:
                del self.simulated[name]

    def refusal(self, server: tuple[str, int] | None) -> str | None:
        """Why no simulated charger can start now, as a code for `refusal_text`; or None."""
        if self.limit == 0:
            return "off"
        if self.settings.ssl_ca_certs:
            return "certificate"
        if self.settings.charger_passwords and not self.settings.charger_password:
            return "password"
        if len(self.running) >= self.limit:
            return "limit"
        if server is None:
            return "address"
        return None

    def refusal_text(self, code: str) -> str:
        texts = {
            "off": "Simulated chargers are turned off on this server (OCPPLAB_MAX_SIMULATED=0).",
            "limit": (
                f"This server already runs {self.limit} simulated "
                f"charger{'' if self.limit == 1 else 's'}, the most it allows. Stop one on "
                f"its page, or wait: one whose page is closed stops after "
                f"{self.idle_timeout / 60:g} minutes."
            ),
            "address": "This server listens on no TCP address that a charger could reach.",
            "certificate": (
                "Simulated chargers cannot connect here: this server asks chargers for a "
                "client certificate (OCPPLAB_SSL_CA_CERTS), and they have none."
            ),
            "password": (
                "Simulated chargers cannot connect here: they log in with "
                "OCPPLAB_CHARGER_PASSWORD, which is not set, and their fresh identities are "
                "not in OCPPLAB_CHARGER_PASSWORDS."
            ),
        }
        return texts.get(code, "")

    def start(self, server: tuple[str, int] | None) -> str:
        """Start one simulated charger against this server; its identity.

        Raises `SimulationRefused` with a message for the person when it cannot start.
        """
        code = self.refusal(server)
        if code is not None:
            raise SimulationRefused(self.refusal_text(code))
        assert server is not None
        identity = self._fresh_identity()
        self._launch(server, identity)
        return identity

    def restart(self, server: tuple[str, int] | None, identity: str) -> None:
        """Start a simulated charger again under `identity`, one this process simulated
        lately and that is not connected now (here: the caller asks the other instances).

        Raises `SimulationRefused` with a message for the person when it cannot start.
        """
        if identity in self.running or identity in self.gateway.sessions:
            raise SimulationRefused(f"{identity} is connected already: stop it first.")
        if not self._remembered(identity):
            raise SimulationRefused(
                f"{identity} is not a simulated charger this server ran lately, so it "
                "cannot be started again here; start a new one from the home page."
            )
        code = self.refusal(server)
        if code is not None:
            raise SimulationRefused(self.refusal_text(code))
        assert server is not None
        self._launch(server, identity)

    def _launch(self, server: tuple[str, int], identity: str) -> None:
        charger = SimulatedCharger(
            self._url(server),
            identity,
            Stats(chargers=1),
            scenario="session",
            timing=DASHBOARD_TIMING,
            call_timeout=self.settings.call_timeout,
            password=self.settings.charger_password,
            ssl_context=self._ssl_context(),
        )
        stop = asyncio.Event()
        task = asyncio.create_task(charger.run(stop), name=f"ocpplab-simulated-{identity}")
        now = self.clock.monotonic()
        running = self.running[identity] = Running(charger, task, stop, now, now)
        self._remember(identity)
        task.add_done_callback(lambda _: self._ended(identity, running))
        if self._watchdog is None or self._watchdog.done():
            self._watchdog = asyncio.create_task(self._watch_forever())

    def _ended(self, identity: str, running: Running) -> None:
        if self.running.get(identity) is running:
            del self.running[identity]
        if identity in self.simulated:
            self._remember(identity)  # remembered from when it stopped

    async def stop(self, identity: str) -> bool:
        """Stop one simulated charger; False when this process runs none of that identity."""
        running = self.running.pop(identity, None)
        if running is None:
            return False
        self._remember(identity)
        running.stop.set()
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            async with asyncio.timeout(5):
                await running.task
        running.task.cancel()
        return True

    async def stop_all(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
        await asyncio.gather(*(self.stop(identity) for identity in list(self.running)))

    def stop_idle(self) -> list[str]:
        """Stop every simulated charger whose page has not been watched for a while."""
        now = self.clock.monotonic()
        idle = []
        for identity, running in self.running.items():
            session = self.gateway.sessions.get(identity)
            if session is not None:
                # An open page re-announces itself every WATCH_TTL / 3 seconds, and each
                # announcement keeps the session watched for WATCH_TTL seconds.
                if session.watched_until > now:
                    running.last_watched = now
                limit = self.idle_timeout
            else:
                limit = max(self.idle_timeout, UNSEEN_LIFETIME)
            if now - running.last_watched > limit:
                idle.append(identity)
        for identity in idle:
            self.running[identity].stop.set()
        return idle

    async def _watch_forever(self) -> None:
        while self.running:
            await asyncio.sleep(min(CHECK_INTERVAL, self.idle_timeout / 2))
            self.stop_idle()

    def _fresh_identity(self) -> str:
        while True:
            identity = f"sim-{secrets.token_hex(3)}"
            if identity not in self.running and identity not in self.gateway.sessions:
                return identity

    def _url(self, server: tuple[str, int]) -> str:
        host, port = server
        if host in {"0.0.0.0", ""}:
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        if ":" in host:
            host = f"[{host}]"
        scheme = "wss" if self.settings.ssl_certfile else "ws"
        return f"{scheme}://{host}:{port}/ocpp/"

    def _ssl_context(self) -> ssl.SSLContext | None:
        if not self.settings.ssl_certfile:
            return None
        # The charger connects to this very process on its own address: the certificate
        # names the public host, not this one, so it is not checked here.
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context


def simulations_of(request: Request) -> Simulations:
    simulations: Simulations = request.app.state.simulations
    return simulations


async def start_simulation(request: Request) -> Response:
    """The landing page's "Simulate a charger" button: start one and open its page."""
    simulations = simulations_of(request)
    server = request.scope.get("server")
    code = simulations.refusal(server)
    if code is not None:
        url = request.url_for("index").include_query_params(simulate_error=code)
        return RedirectResponse(str(url), status_code=303)
    identity = simulations.start(server)
    return RedirectResponse(str(request.url_for("charger_page", identity=identity)), 303)


@text_errors()
async def stop_simulation(request: Request) -> Response:
    """The charger page's "Stop simulated charger" button."""
    identity = path_identity(request)
    if not await simulations_of(request).stop(identity):
        raise NotFound(f"{identity} is not a simulated charger running here.")
    return RedirectResponse(str(request.url_for("charger_page", identity=identity)), 303)


async def restart_simulation(request: Request) -> Response:
    """The charger page's "Start it again" button (no form fields): a simulated charger
    that stopped starts again under its identity; 409 saying why when it cannot."""
    try:
        identity = path_identity(request)
        services = request.app.state.services
        if (await services.central.status(identity))["connected"]:
            raise SimulationRefused(f"{identity} is connected already: stop it first.")
        simulations_of(request).restart(request.scope.get("server"), identity)
    except SimulationRefused as exc:
        return PlainTextResponse(f"Not started: {exc}\n", status_code=409)
    except ANSWERED as exc:
        return text_answer(exc, "Not started")
    return RedirectResponse(str(request.url_for("charger_page", identity=identity)), 303)


routes = [
    Route("/simulate", start_simulation, methods=["POST"], name="simulate"),
    Route(
        "/chargers/{identity:identity}/simulation/start",
        restart_simulation,
        methods=["POST"],
        name="restart_simulation",
    ),
    Route(
        "/chargers/{identity:identity}/simulation/stop",
        stop_simulation,
        methods=["POST"],
        name="stop_simulation",
    ),
]


def install(app: Any, simulations: Simulations) -> None:
    """Make the simulations reachable from views and templates (`simulations` in pages)."""
    app.state.simulations = simulations
    app.state.services.templates.env.globals["simulations"] = simulations
