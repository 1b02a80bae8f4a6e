"""The one request guard in front of the router, and the dashboard password.

A person runs ocpplab on the laptop they browse the web with, or hosts it for strangers.
Either way, a web page from another site must not be able to change anything here, and
no DNS name the owner did not choose may reach the dashboard (DNS rebinding: a hostile
name that resolves to 127.0.0.1 makes the browser treat ocpplab as that site's own
origin). `RequestGuard` is the only place that decides this, for every route:

1. **Host allow-list.** Pages, the API, static files and the page socket answer only to IP
   literals, `localhost` and `*.localhost` (RFC 6761: they never leave the machine, so no
   one else can point them at it), the host of `OCPPLAB_PUBLIC_URL`, and
   `OCPPLAB_ALLOWED_HOSTS`. The port does not matter here. Charger endpoints (`/ocpp…`)
   accept any Host, as chargers send whatever was typed into them; `/healthz` too, for
   load balancers that probe by address or by an internal name.
2. **Same origin for whatever changes something**: every method but GET, HEAD and OPTIONS,
   and the page socket (a websocket handshake is a GET that browsers send cross-site
   without asking). Allowed when the browser says `Sec-Fetch-Site: same-origin`, or, when
   it sends no Sec-Fetch-Site, when `Origin` equals this server's origin (scheme, host and
   port) as the request reached it or as `OCPPLAB_PUBLIC_URL` names it. A request with
   neither header does not come from a web page (curl, scripts) and is allowed.
3. **The JSON API takes only `application/json`**, which a page of another site cannot send
   without a CORS preflight, and ocpplab answers no preflight positively. This holds even
   for a browser too old to send Origin.

Refusals are plain text saying what was wrong: 400 for the Host, 403 for another site, 415
for the content type, 413 for a body over four times `OCPPLAB_MAX_FRAME_SIZE` (so that
no request can make the server hold more); a websocket is refused the same way, before
the upgrade.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hmac
import ipaddress
from collections.abc import AsyncIterator, Iterable
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket

from ocpplab.config import ENV_PREFIX, Settings
from ocpplab.core.throttle import FailedLogins
from ocpplab.server.credentials import Refusal, basic_credentials
from ocpplab.server.gateway import refuse

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
DEFAULT_PORTS = {"http": 80, "https": 443}
WEB_SCHEMES = {"http": "http", "https": "https", "ws": "http", "wss": "https"}
JSON_TYPE = "application/json"
SHOWN_CHARACTERS = 100  # of a header echoed in a refusal


def open_path(path: str) -> bool:
    """Charger endpoints and the health check: no Host check, no origin check, no login.

    Chargers have their own auth (in the gateway) and send any Host; a load balancer
    probing `/healthz` may use any name too. Everything else is the dashboard.
    """
    return path in {"/ocpp", "/healthz"} or path.startswith("/ocpp/")


@dataclasses.dataclass(frozen=True)
class Origin:
    """A web origin (RFC 6454): scheme, host and port, with the port always explicit."""

    scheme: str
    host: str
    port: int

    @classmethod
    def parse(cls, url: str) -> Origin | None:
        """The origin of `url` (an Origin header or a base URL); None when it has none.

        `ws`/`wss` count as `http`/`https`: a websocket handshake and a page of the same
        site differ only in that.
        """
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            return None
        scheme = WEB_SCHEMES.get(parts.scheme.lower())
        if scheme is None or not parts.hostname:
            return None
        return cls(scheme, parts.hostname.rstrip("."), port or DEFAULT_PORTS[scheme])

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = "" if DEFAULT_PORTS[self.scheme] == self.port else f":{self.port}"
        return f"{self.scheme}://{host}{port}"


def host_name(host_header: str) -> str:
    """The name in a Host header, lowercase, without port, brackets or a trailing dot."""
    name = host_header.strip().lower()
    if name.startswith("["):
        return name[1:].partition("]")[0]
    if name.count(":") == 1:
        name = name.partition(":")[0]
    return name.rstrip(".")


def is_ip_literal(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def host_refusal(headers: Headers, allowed: frozenset[str]) -> Refusal | None:
    """Why the Host header is not one this dashboard answers to (DNS rebinding); or None."""
    header = headers.get("host")
    if not header:
        return Refusal(400, "the request has no Host header")
    name = host_name(header)
    if name in allowed or name.endswith(".localhost") or is_ip_literal(name):
        return None
    shown = name[:SHOWN_CHARACTERS]
    return Refusal(400, f"Host {shown!r} is not allowed; add it to {ENV_PREFIX}ALLOWED_HOSTS")


def cross_site_refusal(headers: Headers, ours: Iterable[Origin]) -> Refusal | None:
    """Why this request comes from a page of another site; None when it does not.

    `Sec-Fetch-Site` is set by the browser itself and no page can forge it, so when it is
    present it decides; older browsers send only Origin. Origin `null` (a sandboxed frame,
    a `file:` page, a cross-site redirect) is another site.
    """
    fetch_site = headers.get("sec-fetch-site")
    if fetch_site is not None:
        if fetch_site.strip().lower() == "same-origin":
            return None
        return Refusal(
            403,
            f"cross-site request refused: the browser sent Sec-Fetch-Site: "
            f"{fetch_site[:SHOWN_CHARACTERS]} (only pages of this site may change anything)",
        )
    origin_header = headers.get("origin")
    if origin_header is None:
        return None
    ours = list(ours)
    if Origin.parse(origin_header) in ours:
        return None
    expected = " or ".join(dict.fromkeys(str(origin) for origin in ours)) or "this server"
    return Refusal(
        403,
        f"cross-site request refused: Origin {origin_header[:SHOWN_CHARACTERS]} does not "
        f"match {expected}",
    )


def content_type_refusal(headers: Headers) -> Refusal | None:
    """Why an API request that changes something does not carry a JSON body; or None.

    A request without a body and without a type (`curl -X DELETE`, a POST of no payload) is
    fine: whatever a page sends with a body has a type, and only JSON is refused to pages.
    """
    content_type = headers.get("content-type")
    if content_type is None:
        has_body = headers.get("content-length", "0") != "0" or "transfer-encoding" in headers
        if not has_body:
            return None
    elif content_type.partition(";")[0].strip().lower() == JSON_TYPE:
        return None
    got = content_type[:SHOWN_CHARACTERS] if content_type else "no Content-Type"
    return Refusal(
        415, f"the API takes application/json: send Content-Type: {JSON_TYPE} (got {got})"
    )


class _BodyTooLarge(Exception):
    """A request body passed the guard's limit while the app was reading it."""


UPLOAD_PATHS = frozenset({"/recordings/open", "/recordings/compare", "/recordings/replay"})


class RequestGuard:
    """The Host allow-list and the same-origin check for everything but charger endpoints."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        allowed = {"localhost", *settings.allowed_hosts}
        self.public_origin = Origin.parse(settings.public_url) if settings.public_url else None
        if self.public_origin is not None:
            allowed.add(self.public_origin.host)
        self.allowed_hosts = frozenset(allowed)
        # A form or API body carries at most a frame's payload, JSON in a form field
        # percent-encoded (up to three bytes for one): nothing legitimate is larger.
        self.max_body = 4 * settings.max_frame_size
        # ... except an uploaded recording (web/recordings.py): up to its own limit.
        self.max_upload = 8 * settings.recording_limit + 65536  # two files to compare

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in {"http", "websocket"} or open_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        refusal = self.refusal(scope)
        if refusal is None and scope["type"] == "http":
            await self._within_body_limit(scope, receive, send)
        elif refusal is None:
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            await refuse(WebSocket(scope, receive, send), refusal.status, refusal.reason)
        else:
            response = PlainTextResponse(refusal.reason + "\n", status_code=refusal.status)
            await response(scope, receive, send)

    async def _within_body_limit(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the request, refusing a body over `max_body` bytes with 413 (however sent)."""
        received = 0
        started = False
        limit = self.max_upload if scope["path"] in UPLOAD_PATHS else self.max_body

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLarge
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        length = Headers(scope=scope).get("content-length", "")
        if length.isdigit() and int(length) > limit:
            await self._too_large(scope, receive, send, limit)
            return
        try:
            await self.app(scope, limited_receive, watched_send)
        except _BodyTooLarge:
            if not started:
                await self._too_large(scope, receive, send, limit)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        text = f"the request body is larger than {limit:,} bytes\n"
        await PlainTextResponse(text, status_code=413)(scope, receive, send)

    def refusal(self, scope: Scope) -> Refusal | None:
        headers = Headers(scope=scope)
        refusal = host_refusal(headers, self.allowed_hosts)
        if refusal is not None:
            return refusal
        if scope["type"] == "http" and scope["method"] in SAFE_METHODS:
            return None
        refusal = cross_site_refusal(headers, self.our_origins(scope, headers))
        if refusal is None and scope["type"] == "http" and scope["path"].startswith("/api/"):
            refusal = content_type_refusal(headers)
        return refusal

    def our_origins(self, scope: Scope, headers: Headers) -> list[Origin]:
        """This server's origin as the request reached it, and as the public URL names it."""
        ours = []
        reached = Origin.parse(f"{scope.get('scheme', 'http')}://{headers.get('host', '')}")
        if reached is not None:
            ours.append(reached)
        if self.public_origin is not None:
            ours.append(self.public_origin)
        return ours


# At most this many login attempts from one source wait their turn; more are refused at
# once, so a source opening connections in parallel holds a bounded number of them.
WAITING_LOGINS_PER_SOURCE = 4


class DashboardAuth:
    """HTTP Basic auth for pages, the API and page sockets when OCPPLAB_DASHBOARD_PASSWORD
    is set; chargers (`/ocpp…`) have their own, and `/healthz` stays open.

    Guessing costs the guesser time: each failed login from a source makes that source's
    next refusal wait longer (`FailedLogins`). The attempts of a source that has failed are
    checked one at a time, so opening many connections at once does not multiply the rate
    of guesses. Waiting is an `await`, so other sources are served meanwhile.
    """

    def __init__(
        self, app: ASGIApp, password: str | None, failed_logins: FailedLogins | None = None
    ) -> None:
        self.app = app
        self.password = password
        self.failed_logins = failed_logins or FailedLogins()
        self._turns: dict[str, tuple[asyncio.Lock, int]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            not self.password
            or scope["type"] not in {"http", "websocket"}
            or open_path(scope["path"])
        ):
            await self.app(scope, receive, send)
            return
        authorization = Headers(scope=scope).get("authorization")
        if authorization is None:
            await self._refuse(scope, receive, send, 401, "Log in to use this dashboard.")
            return
        client = scope.get("client")
        source = client[0] if client else "unknown"
        if self._waiting(source) >= WAITING_LOGINS_PER_SOURCE:
            await self._refuse(
                scope,
                receive,
                send,
                429,
                "Too many login attempts from your address at once; wait and try again.",
            )
            return
        async with self._turn(source):
            authorized = self._authorized(authorization)
            if authorized:
                self.failed_logins.succeeded(source)
            else:
                await asyncio.sleep(self.failed_logins.failed(source))
        if authorized:
            await self.app(scope, receive, send)
        else:
            await self._refuse(scope, receive, send, 401, "Wrong password for this dashboard.")

    def _waiting(self, source: str) -> int:
        """How many login attempts from `source` are being checked or wait their turn."""
        return self._turns[source][1] if source in self._turns else 0

    @contextlib.asynccontextmanager
    async def _turn(self, source: str) -> AsyncIterator[None]:
        """Hold `source`'s turn: its login attempts are checked one after another."""
        lock = self._turns[source][0] if source in self._turns else asyncio.Lock()
        self._turns[source] = (lock, self._waiting(source) + 1)
        try:
            async with lock:
                yield
        finally:
            waiting = self._waiting(source) - 1
            if waiting:
                self._turns[source] = (lock, waiting)
            else:
                del self._turns[source]

    def _authorized(self, authorization: str) -> bool:
        credentials = basic_credentials(authorization)  # any username
        return credentials is not None and hmac.compare_digest(
            credentials[1], (self.password or "").encode()
        )

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, text: str) -> None:
        headers = {"WWW-Authenticate": 'Basic realm="ocpplab dashboard"'} if status == 401 else {}
        if scope["type"] == "websocket":
            await refuse(WebSocket(scope, receive, send), status, text, headers)
            return
        response = PlainTextResponse(text + "\n", status_code=status, headers=headers)
        await response(scope, receive, send)
