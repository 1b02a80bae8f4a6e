"""HTML pages and the forms that post back to them."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from jinja2 import TemplateNotFound
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from ocpplab.config import Settings
from ocpplab.core.errors import BrokerError, InvalidBody, NoLongerHeld
from ocpplab.core.identity import from_user_input, identity_problem
from ocpplab.core.responder import ResponderSettings
from ocpplab.server.roster import LISTED
from ocpplab.web import api, configure, operations
from ocpplab.web.errors import path_identity, text_errors
from ocpplab.web.live import status_from_event
from ocpplab.web.services import Services, services_of
from ocpplab.web.templating import render_block

MAX_TYPED = 4096  # characters of a typed identity shown back on the landing page


def base_url(request: Request) -> str:
    """`https://host` as people and chargers reach us: OCPPLAB_PUBLIC_URL, else the request."""
    public = services_of(request).settings.public_url
    if public:
        return public
    return f"{request.url.scheme}://{request.url.netloc}"


def central_system_url(request: Request) -> str:
    """The URL to type into the charger: ws(s)://host/ocpp/ (the charger appends its id)."""
    scheme, rest = base_url(request).split("://", 1)
    return f"{'wss' if scheme in {'https', 'wss'} else 'ws'}://{rest}/ocpp/"


async def index(request: Request) -> Response:
    """The landing page; `?identity=…` (where a refused Start sends the person) shows that
    identity again with what is wrong with it."""
    services = services_of(request)
    refused = "identity" in request.query_params
    raw = request.query_params.get("identity", "")[:MAX_TYPED]
    problem = start_problem(raw, services.settings.max_identity_length) if refused else None
    return await render_index(request, services, identity=raw, error=problem)


async def render_index(
    request: Request, services: Services, *, identity: str, error: str | None, status: int = 200
) -> Response:
    count, connected = await _connected(services)
    listed = identities_listed(services.settings)
    return services.templates.TemplateResponse(
        request,
        "index.html",
        {
            "central_url": central_system_url(request),
            "identity": identity,
            "error": error,
            "identities_listed": listed,
            "connected": connected if listed else [],
            "connected_count": count,
        },
        status_code=status,
    )


def identities_listed(settings: Settings) -> bool:
    """Whether the landing page lists the identities of connected chargers.

    On a lab open to strangers an identity is the only key to a charger's page: a list
    would hand every visitor every charger. A private dashboard (with a password) lists
    them, and so does one whose owner turns the list on (OCPPLAB_LIST_CHARGERS).
    """
    return bool(settings.dashboard_password) or settings.list_chargers


def start_problem(raw: str, max_length: int) -> str | None:
    """What is wrong with an identity a person typed (or pasted) on the landing page."""
    identity = from_user_input(raw)
    problem = identity_problem(identity, max_length)
    if problem and "://" in raw and not identity:
        problem = (
            "that is the central system's URL, without a charger identity: type the identity "
            "the charger uses (what it appends after /ocpp/), or paste the charger's whole URL"
        )
    return problem


async def start(request: Request) -> Response:
    """The landing page's Start button: open the identity's page, or say what is wrong.

    A refused identity goes back to `/?identity=…` (303), not a page rendered at `/start`:
    reloading it must not post again. The message is worked out again from the identity
    there, so a link cannot make the page say anything else.
    """
    services = services_of(request)
    form = await request.form()
    raw = str(form.get("identity", ""))[:MAX_TYPED]
    if start_problem(raw, services.settings.max_identity_length):
        url = request.url_for("index").include_query_params(identity=raw)
        return RedirectResponse(str(url), status_code=303)
    url = request.url_for("charger_page", identity=from_user_input(raw))
    return RedirectResponse(str(url), status_code=303)


@text_errors()
async def charger_page(request: Request) -> Response:
    services = services_of(request)
    identity = path_identity(request)
    presence = await _status_or_none(services, identity)
    status = page_status(presence)
    responder = await _responder_or_default(services, identity)
    panels: dict[str, Any] = {}
    for panel in (configure, operations):
        panels.update(await panel.page_context(services, identity))
    checks_template = _exists(services, "_checks.html")
    try:
        recording = await services.central.recording_state(identity)
    except BrokerError:
        recording = {"on": False, "started": None, "truncated": False}
    context = {
        **panels,
        **recording_context(services, recording),
        "oob": False,
        "live_ok": True,
        "live_text": "Live updates: connecting…",
        "identity": identity,
        "status": status,
        "state": presence.get("state") if presence else None,
        "state_template": services.state_template(presence.get("dialect") if presence else None),
        "events": [],
        "held": [],
        "responder": responder,
        "charger_url": central_system_url(request) + quote(identity, safe=""),
        "checks_template": checks_template,
        "live_path": request.url_for("live", identity=identity).path,
    }
    return services.templates.TemplateResponse(request, "charger.html", context)


def page_status(presence: dict[str, Any] | None) -> dict[str, Any]:
    """The status line of a page as it opens, from the presence record.

    Besides what `status_from_event` says, `at` is when the charger connected (or went
    offline, when the record knows it), which the page shows as a clock time.
    """
    if presence and presence.get("connected"):
        return {**status_from_event(presence), "at": presence.get("connected_since") or ""}
    if presence and presence.get("disconnected_at"):
        event = {
            "kind": "disconnected",
            "code": presence.get("close_code"),
            "reason": presence.get("close_reason") or "",
        }
        return {**status_from_event(event), "at": presence["disconnected_at"]}
    return status_from_event(None)


def _exists(services: Services, name: str) -> bool:
    """Whether the templates hold `name`: a panel being built shows once its template does."""
    try:
        services.templates.env.get_template(name)
    except TemplateNotFound:
        return False
    return True


async def _status_or_none(services: Services, identity: str) -> dict[str, Any] | None:
    try:
        return await services.central.status(identity)
    except BrokerError:
        return None


async def _responder_or_default(services: Services, identity: str) -> ResponderSettings:
    try:
        return await services.central.responder_settings(identity)
    except BrokerError:
        return ResponderSettings()


@text_errors("Not changed")
async def recording_form(request: Request) -> Response:
    """The Record / Stop recording button: the panel again, as it now is."""
    services = services_of(request)
    identity = path_identity(request)
    on = str((await request.form()).get("on")) == "true"
    central = services.central
    state = await (central.start_recording if on else central.stop_recording)(identity)
    html = render_block(
        services.templates,
        "charger.html",
        "recording_panel",
        **recording_context(services, state),
        identity=identity,
        connection=request,
    )
    return HTMLResponse(html)


@text_errors()
async def recording_download(request: Request) -> Response:
    """The Download link: the recording as an NDJSON file."""
    identity = path_identity(request)
    return api.recording_download(identity, await services_of(request).central.recording(identity))


def recording_context(services: Services, state: dict[str, Any]) -> dict[str, Any]:
    return {
        "recording": state,
        "recording_limit": services.settings.recording_limit,
        "recording_ttl": services.settings.recording_ttl,
    }


@text_errors()
async def answer_held(request: Request) -> Response:
    """The Send / Don't answer buttons of a held call's card."""
    services = services_of(request)
    identity = request.path_params["identity"]
    unique_id = request.path_params["unique_id"]
    form = await request.form()
    reply: dict[str, Any]
    if form.get("reply") == "ignore":
        reply = {"ignore": True}
    elif form.get("reply") == "error":
        code = str(form.get("error_code") or "GenericError")
        reply = {"error": {"code": code, "description": "answered by hand", "details": {}}}
    else:
        try:
            payload = json.loads(str(form.get("payload", "")))
        except ValueError as exc:
            raise InvalidBody(f"The answer is not valid JSON: {exc}") from None
        reply = {"payload": payload}
    if not await services.central.answer_held(identity, unique_id, reply):
        raise NoLongerHeld("Too late: this call was already answered.")
    return Response(status_code=204)


async def _connected(services: Services, limit: int = LISTED) -> tuple[int, list[dict[str, Any]]]:
    """Every instance's chargers; this one's alone while the broker cannot be read."""
    try:
        return await services.central.connected(limit)
    except BrokerError:
        return services.gateway.roster.local(limit)


async def healthz(request: Request) -> Response:
    """200 while the broker answers; `chargers` counts those of every instance."""
    services = services_of(request)
    try:
        ok = await services.broker.ping()
    except BrokerError:
        ok = False
    count, _ = await _connected(services, 0) if ok else services.gateway.roster.local(0)
    body = {"status": "ok" if ok else "broker unavailable", "chargers": count}
    return JSONResponse(body, status_code=200 if ok else 503)
