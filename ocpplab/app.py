"""The application factory: `create_app(settings, *, broker=None, clock=None)`."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket

from ocpplab.broker import broker_from_url
from ocpplab.broker.base import Broker
from ocpplab.config import Settings
from ocpplab.core.clock import Clock, SystemClock
from ocpplab.core.dialect import Dialect
from ocpplab.dialects import DIALECTS
from ocpplab.server.central import CentralSystem
from ocpplab.server.gateway import Gateway
from ocpplab.tools import dashboard_chargers as simulation
from ocpplab.tools import dashboard_checks, dashboard_replays
from ocpplab.tools.check_runs import CheckRuns, simulated_actors
from ocpplab.web import api, configure, errors, operations, pages, recordings
from ocpplab.web.guard import DashboardAuth, RequestGuard
from ocpplab.web.live import serve_page_socket
from ocpplab.web.services import Services
from ocpplab.web.templating import STATIC_DIR, make_templates

logger = logging.getLogger("ocpplab")


CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


class Ocpplab(Starlette):
    """The ASGI app: charger websockets (`/ocpp/{identity}`, and `/ocpp` or `/` without
    one) go straight to the gateway; everything else through middleware and the router.

    A charger connection lives for days; each layer it passes through keeps a coroutine
    frame alive for as long as it is open. Skipping Starlette's own layers and the
    page-only ones (security headers, the request guard, dashboard auth, routing) saves
    memory on every idle charger. Chargers have their own auth in the gateway, and may
    send any Host.
    """

    gateway: Gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            path: str = scope["path"]
            if path.startswith("/ocpp/") or path in {"/ocpp", "/"}:
                scope["app"] = self
                scope["path_params"] = {"identity": path[len("/ocpp/") :]}
                await self.gateway.serve(WebSocket(scope, receive, send))
                return
        await super().__call__(scope, receive, send)


# Static files: the vendored ones have their version in their path and never change; ours
# (app.js, app.css) are revalidated after a few minutes (StaticFiles answers 304 by ETag).
VENDOR_CACHE = b"public, max-age=31536000, immutable"
STATIC_CACHE = b"public, max-age=300"


class SecurityHeaders:
    """CSP without inline script, and the usual hardening headers, on every HTTP response;
    cache headers on static files."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [
                    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"same-origin"),
                ]
                path: str = scope["path"]
                if path.startswith("/static/") and message.get("status") in {200, 304}:
                    vendored = path.startswith("/static/vendor/")
                    headers.append((b"cache-control", VENDOR_CACHE if vendored else STATIC_CACHE))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(
    settings: Settings | None = None,
    *,
    broker: Broker | None = None,
    clock: Clock | None = None,
    dialects: tuple[Dialect, ...] = DIALECTS,
) -> Starlette:
    """Build the ASGI app. Collaborators are passed in; nothing is global.

    `dialects` are the OCPP versions spoken, in order of preference: a charger that offers
    none of their subprotocols is spoken to in the first.
    """
    settings = settings or Settings()
    broker = broker or broker_from_url(settings.redis_url)
    clock = clock or SystemClock()
    gateway = Gateway(settings, broker, clock, dialects)
    services = Services(
        settings=settings,
        broker=broker,
        clock=clock,
        gateway=gateway,
        central=CentralSystem(settings, broker, gateway),
        templates=make_templates(dialects[0]),
        dialect=dialects[0],
    )

    simulations = simulation.Simulations(settings, gateway, clock)
    replays = dashboard_replays.Replays(settings, simulations)
    check_runs = CheckRuns(services.central, broker, dialects[0].checks, clock)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await broker.start()
        await gateway.start()
        try:
            yield
        finally:
            await check_runs.stop_all()
            await replays.stop_all()
            await simulations.stop_all()
            await gateway.stop()
            await broker.stop()

    routes = [
        Route("/", pages.index, name="index"),
        Route("/start", pages.start, methods=["POST"], name="start"),
        Route("/healthz", pages.healthz, name="healthz"),
        Route("/ocpp/{identity:path}", gateway.not_upgraded, name="charger_over_http"),
        Route("/ocpp", gateway.not_upgraded, name="charger_over_http_without_identity"),
        Route("/chargers/{identity:identity}", pages.charger_page, name="charger_page"),
        WebSocketRoute("/chargers/{identity:identity}/live", serve_page_socket, name="live"),
        Route(
            "/chargers/{identity:identity}/held/{unique_id:segment}",
            pages.answer_held,
            methods=["POST"],
            name="answer_held",
        ),
        Route(
            "/chargers/{identity:identity}/recording",
            pages.recording_form,
            methods=["POST"],
            name="recording_form",
        ),
        Route(
            "/chargers/{identity:identity}/recording.ndjson",
            pages.recording_download,
            name="recording_download",
        ),
        Route("/api/chargers/{identity:identity}", api.charger, name="api_charger"),
        Route(
            "/api/chargers/{identity:identity}/responses/{action}",
            api.response_rule,
            methods=["GET", "PUT", "DELETE"],
            name="api_response",
        ),
        Route(
            "/api/chargers/{identity:identity}/recording",
            api.recording,
            methods=["GET", "POST", "DELETE"],
            name="api_recording",
        ),
        Route(
            "/api/chargers/{identity:identity}/responses/{action}/restart",
            api.restart_sequence,
            methods=["POST"],
            name="api_restart_sequence",
        ),
        Route(
            "/api/chargers/{identity:identity}/validation",
            api.validation,
            methods=["GET", "PUT"],
            name="api_validation",
        ),
        Route(
            "/api/chargers/{identity:identity}/calls/{action}",
            api.call,
            methods=["POST"],
            name="api_call",
        ),
        Route(
            "/api/chargers/{identity:identity}/frames",
            api.frames,
            methods=["POST"],
            name="api_frames",
        ),
        Route(
            "/api/chargers/{identity:identity}/held/{unique_id:segment}",
            api.held,
            methods=["POST"],
            name="api_held",
        ),
        *recordings.routes,
        *dashboard_checks.routes,
        *configure.routes,
        *operations.routes,
        *simulation.routes,
        *dashboard_replays.routes,
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    configure.install(services)
    operations.install(services)
    app = Ocpplab(
        routes=routes,
        lifespan=lifespan,
        exception_handlers=errors.EXCEPTION_HANDLERS,
        middleware=[
            Middleware(GZipMiddleware, minimum_size=1024),
            Middleware(SecurityHeaders),
            Middleware(RequestGuard, settings=settings),
            Middleware(DashboardAuth, password=settings.dashboard_password),
        ],
    )
    app.state.services = services
    app.gateway = gateway
    simulation.install(app, simulations)
    app.state.replays = replays
    app.state.check_runs = check_runs
    check_runs.actors = simulated_actors(simulations)
    return app
