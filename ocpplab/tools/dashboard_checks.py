"""Guided charger checks on the dashboard: the JSON API, the Checks panel's forms, the report.

API (DESIGN.md's statuses): `GET /api/checks` lists the catalogue; `POST
/api/chargers/{identity}/checks` with `{"only": [ids], "id_tag": …, "connector": n}` starts
a run (202, its first report; 404 for an unknown id, 409 when the charger is offline or a
run is going on); `GET` follows it (404 before any run); `DELETE` aborts it; `POST
…/checks/prompt` with `{"token", "done"}` answers the person's question;
`GET …/checks/report.json` downloads the report and `/chargers/{identity}/checks/report`
shows it as a printable page. The page's forms post to the `/chargers/…/checks` routes and
get the panel back; the panel follows a run live through `CheckProgress` events.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from ocpplab.core.checks import Catalogue
from ocpplab.core.errors import InvalidBody, NotFound
from ocpplab.tools.check_runs import CheckRuns
from ocpplab.web.api import json_body
from ocpplab.web.errors import ANSWERED, JSONResponse, path_identity, refusal, text_errors
from ocpplab.web.services import services_of
from ocpplab.web.templating import render_block

PANEL = "_checks.html"
MAX_ONLY = 100  # ids in one request


def runs_of(request: Request) -> CheckRuns:
    runs: CheckRuns = request.app.state.check_runs
    return runs


def catalogue_of(request: Request) -> Catalogue:
    return runs_of(request).catalogue


LOCATIONS = ("firmware_location", "diagnostics_location")


def _locations(data: dict[str, Any]) -> dict[str, str]:
    """Where a firmware image is (UpdateFirmware) and where diagnostics go (GetDiagnostics)."""
    found = {}
    for key in LOCATIONS:
        value = data.get(key)
        if value in (None, ""):
            continue
        if not isinstance(value, str) or len(value) > 512 or "://" not in value:
            raise InvalidBody(f"{key} must be a URL (scheme://…) of at most 512 characters")
        found[key] = value
    return found


def _options(data: Any) -> tuple[list[str] | None, str | None, int]:
    if not isinstance(data, dict):
        raise InvalidBody("the body must be a JSON object")
    only = data.get("only")
    if only is not None and (
        not isinstance(only, list)
        or len(only) > MAX_ONLY
        or not all(isinstance(item, str) and len(item) <= 40 for item in only)
    ):
        raise InvalidBody(f"only must be a list of at most {MAX_ONLY} check ids")
    id_tag, connector = _card_and_connector(data)
    return only, id_tag, connector


def _card_and_connector(data: dict[str, Any]) -> tuple[str | None, int]:
    """The card (idTag) and connector of a run or a simulated charger's act."""
    id_tag = data.get("id_tag")
    if id_tag is not None and (not isinstance(id_tag, str) or not 0 < len(id_tag) <= 20):
        raise InvalidBody("id_tag must be a text of 1 to 20 characters (OCPP 1.6 IdToken)")
    connector = data.get("connector", 1)
    if not isinstance(connector, int) or isinstance(connector, bool) or not 1 <= connector <= 99:
        raise InvalidBody("connector must be a whole number from 1 to 99")
    return id_tag, connector


# The JSON API


async def api_catalogue(request: Request) -> Response:
    return JSONResponse(
        {
            "profiles": [
                {"profile": profile, "checks": checks}
                for profile, checks in catalogue_of(request).grouped()
            ]
        }
    )


async def api_checks(request: Request) -> Response:
    identity = path_identity(request)
    runs = runs_of(request)
    if request.method == "POST":
        data = await json_body(request)
        only, id_tag, connector = _options(data)
        facts = _locations(data)
        first = await runs.start(identity, only, id_tag=id_tag, connector=connector, facts=facts)
        return JSONResponse(first, status_code=202)
    if request.method == "DELETE":
        if not await runs.abort(identity):
            raise NotFound(f"no checks are running on {identity}")
        return JSONResponse({"aborting": True}, status_code=202)
    report = await runs.report(identity)
    if report is None:
        raise NotFound(f"no checks have run on {identity} (or their report expired)")
    return JSONResponse(report)


async def api_prompt(request: Request) -> Response:
    identity = path_identity(request)
    data = await json_body(request)
    token, done = (data.get("token"), data.get("done")) if isinstance(data, dict) else (0, 0)
    if not isinstance(token, str) or not isinstance(done, bool):
        raise InvalidBody('the body must be {"token": "…", "done": true or false}')
    if not await runs_of(request).answer(identity, token, done):
        raise NotFound(f"no checks are running on {identity}")
    return JSONResponse({"answered": True}, status_code=202)


async def api_report(request: Request) -> Response:
    identity = path_identity(request)
    report = await runs_of(request).report(identity)
    if report is None:
        raise NotFound(f"no checks have run on {identity} (or their report expired)")
    filename = "ocpplab-checks.json"
    return JSONResponse(
        report, headers={"Content-Disposition": f'attachment; filename="{filename}"'}
    )


# A simulated charger's person acts (plug in, present a card…), from its page and the API

ACTS = ("plug", "unplug", "present_card", "power_cycle")


async def _act(request: Request) -> tuple[str, str, bool]:
    identity = path_identity(request)
    act = request.path_params["act"]
    if act not in ACTS:
        raise NotFound(f"no such act {act!r}; one of {', '.join(ACTS)}")
    running = request.app.state.simulations.running.get(identity)
    if running is None:
        raise NotFound(f"{identity} is not a simulated charger running here")
    detail: dict[str, Any] = {}
    if request.method == "POST" and request.url.path.startswith("/api/"):
        data = await json_body(request)
        if not isinstance(data, dict):
            raise InvalidBody("the body must be a JSON object")
        id_tag, connector = _card_and_connector(data)
        detail = {"connector": connector, **({"id_tag": id_tag} if id_tag else {})}
    done = bool(await running.charger.act(act, detail))
    return identity, act, done


async def api_act(request: Request) -> Response:
    _, act, done = await _act(request)
    return JSONResponse({"act": act, "done": done}, status_code=200 if done else 409)


@text_errors("Not done")
async def act_form(request: Request) -> Response:
    _, act, done = await _act(request)
    text = act.replace("_", " ")
    message = f"Simulated charger: {text} done." if done else f"The charger cannot {text} now."
    return HTMLResponse(f'<span role="status">{message}</span>')


# The page


async def page_context(request: Request, identity: str) -> dict[str, Any]:
    """What the charger page's Checks panel needs (as `pages.charger_page` gives it)."""
    return {
        "check_groups": catalogue_of(request).grouped(),
        "check_report": await runs_of(request).report(identity),
    }


def render_panel(request: Request, identity: str, context: dict[str, Any], **extra: Any) -> str:
    templates = services_of(request).templates
    values = {"request": request, "identity": identity, "oob": False, **context, **extra}
    return render_block(templates, PANEL, "checks_panel", **values)


async def panel(request: Request) -> Response:
    """The Checks panel as it now is (the page fetches it when its tab is first shown)."""
    return await _panel(request, path_identity(request))


async def _panel(request: Request, identity: str, **extra: Any) -> Response:
    context = await page_context(request, identity)
    return HTMLResponse(render_panel(request, identity, context, **extra))


async def start_form(request: Request) -> Response:
    identity = path_identity(request)
    form = await request.form()
    only = [str(value) for value in form.getlist("check")][:MAX_ONLY]
    if not only:
        return await _panel(request, identity, check_error="Tick at least one check.")
    data: dict[str, Any] = {"only": only}
    if form.get("id_tag"):
        data["id_tag"] = str(form["id_tag"])
    try:
        data["connector"] = int(str(form.get("connector") or "1"))
    except ValueError:
        return await _panel(request, identity, check_error="Connector: a whole number.")
    try:
        options = _options(data)
    except InvalidBody as error:
        return await _panel(request, identity, check_error=str(error))
    try:
        await runs_of(request).start(identity, options[0], id_tag=options[1], connector=options[2])
    except ANSWERED as error:
        return await _panel(request, identity, check_error=refusal(error).sentence("Not started"))
    return await _panel(request, identity)


@text_errors("Not sent")
async def prompt_form(request: Request) -> Response:
    identity = path_identity(request)
    form = await request.form()
    await runs_of(request).answer(
        identity, str(form.get("token", ""))[:100], form.get("done") == "yes"
    )
    return await _panel(request, identity)


@text_errors("Not aborted")
async def abort_form(request: Request) -> Response:
    identity = path_identity(request)
    await runs_of(request).abort(identity)
    return await _panel(request, identity)


async def report_page(request: Request) -> Response:
    identity = path_identity(request)
    report = await runs_of(request).report(identity)
    if report is None:
        raise NotFound(f"no checks have run on {identity} (or their report expired)")
    return services_of(request).templates.TemplateResponse(
        request, "checks_report.html", {"identity": identity, "report": report}
    )


routes: list[BaseRoute] = [
    Route(
        "/api/chargers/{identity:identity}/simulated/{act:segment}",
        api_act,
        methods=["POST"],
        name="api_simulated_act",
    ),
    Route(
        "/chargers/{identity:identity}/simulated/{act:segment}",
        act_form,
        methods=["POST"],
        name="simulated_act",
    ),
    Route("/api/checks", api_catalogue, name="api_checks_catalogue"),
    Route(
        "/api/chargers/{identity:identity}/checks",
        api_checks,
        methods=["GET", "POST", "DELETE"],
        name="api_checks",
    ),
    Route(
        "/api/chargers/{identity:identity}/checks/prompt",
        api_prompt,
        methods=["POST"],
        name="api_checks_prompt",
    ),
    Route(
        "/api/chargers/{identity:identity}/checks/report.json",
        api_report,
        name="api_checks_report",
    ),
    Route(
        "/chargers/{identity:identity}/checks",
        start_form,
        methods=["POST"],
        name="checks_start",
    ),
    Route("/chargers/{identity:identity}/checks/panel", panel, name="checks_panel"),
    Route(
        "/chargers/{identity:identity}/checks/prompt",
        prompt_form,
        methods=["POST"],
        name="checks_prompt",
    ),
    Route(
        "/chargers/{identity:identity}/checks/abort",
        abort_form,
        methods=["POST"],
        name="checks_abort",
    ),
    Route(
        "/chargers/{identity:identity}/checks/report",
        report_page,
        name="checks_report",
    ),
]
