"""HTML pages and the forms that post back to them."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response

from ocpplab import configure, operations
from ocpplab.exceptions import BrokerError, ChargerOffline
from ocpplab.identity import from_user_input, identity_problem
from ocpplab.live import status_from_event
from ocpplab.origin import cross_site
from ocpplab.responder import ResponderSettings
from ocpplab.services import Services, services_of


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
    services = services_of(request)
    return render_index(request, services, identity="", error=None)


def render_index(
    request: Request, services: Services, *, identity: str, error: str | None, status: int = 200
) -> Response:
    connected = [session.presence() for session in services.gateway.sessions.values()]
    connected.sort(key=lambda item: item["identity"])
    return services.templates.TemplateResponse(
        request,
        "index.html",
        {
            "central_url": central_system_url(request),
            "identity": identity,
            "error": error,
            "connected": connected[:50],
        },
        status_code=status,
    )


async def start(request: Request) -> Response:
    """The landing page's Start button: open the identity's page, or say what is wrong."""
    services = services_of(request)
    if cross_site(request, services.settings.public_url):
        return PlainTextResponse("cross-site form post refused", status_code=403)
    form = await request.form()
    raw = str(form.get("identity", ""))
    identity = from_user_input(raw)
    problem = identity_problem(identity, services.settings.max_identity_length)
    if problem:
        return render_index(request, services, identity=raw, error=problem, status=422)
    url = request.url_for("charger_page", identity=identity)
    return RedirectResponse(str(url), status_code=303)


async def charger_page(request: Request) -> Response:
    services = services_of(request)
    identity = request.path_params["identity"]
    problem = identity_problem(identity, services.settings.max_identity_length)
    if problem:
        return PlainTextResponse(problem + "\n", status_code=400)
    presence = await _status_or_none(services, identity)
    status = status_from_event(presence if presence and presence.get("connected") else None)
    responder = await _responder_or_default(services, identity)
    panels: dict[str, Any] = {}
    for panel in (configure, operations):
        panels.update(await panel.page_context(services, identity))
    context = {
        **panels,
        "oob": False,
        "live_ok": True,
        "live_text": "Live updates: connecting…",
        "identity": identity,
        "status": status,
        "state": presence.get("state") if presence else None,
        "events": [],
        "held": [],
        "responder": responder,
        "charger_url": central_system_url(request) + quote(identity, safe=""),
        "live_path": request.url_for("live", identity=identity).path,
    }
    return services.templates.TemplateResponse(request, "charger.html", context)


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


async def answer_held(request: Request) -> Response:
    """The Send / Don't answer buttons of a held call's card."""
    services = services_of(request)
    identity = request.path_params["identity"]
    unique_id = request.path_params["unique_id"]
    if cross_site(request, services.settings.public_url):
        return PlainTextResponse("cross-site form post refused", status_code=403)
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
            return PlainTextResponse(f"The answer is not valid JSON: {exc}", status_code=422)
        reply = {"payload": payload}
    try:
        won = await services.central.answer_held(identity, unique_id, reply)
    except ChargerOffline as exc:
        return PlainTextResponse(str(exc), status_code=409)
    except BrokerError as exc:
        return PlainTextResponse(str(exc), status_code=503)
    if not won:
        return PlainTextResponse("Too late: this call was already answered.", status_code=410)
    return Response(status_code=204)


async def healthz(request: Request) -> Response:
    services = services_of(request)
    try:
        ok = await services.broker.ping()
    except BrokerError:
        ok = False
    body = {
        "status": "ok" if ok else "broker unavailable",
        "chargers": len(services.gateway.sessions),
    }
    return JSONResponse(body, status_code=200 if ok else 503)
