"""The JSON API: the same operations as the dashboard's forms, for scripts.

Status codes (DESIGN.md): 200 with the charger's CALLRESULT payload, 502 with its CALLERROR,
504 on timeout, 409 when no charger of that identity is connected, 422 for a payload or
rule that cannot be used (with every reason). The views raise ocpplab's errors; which
status and body each gets is decided in `ocpplab.web.errors`.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ocpplab.core.dialect import Dialect
from ocpplab.core.errors import (
    CallTimeout,
    InvalidBody,
    NoLongerHeld,
    SchemaViolation,
    UnknownAction,
)
from ocpplab.core.responder import DEFAULT_RULE, AnyRule, Sequence, rule_from_json
from ocpplab.web.errors import JSONResponse, json_error, path_identity
from ocpplab.web.forms import fill_for_validation
from ocpplab.web.services import services_of


async def json_body(request: Request) -> Any:
    """The request's JSON body ({} when empty); `InvalidBody` when it is not JSON."""
    body = await request.body()
    try:
        return json.loads(body) if body.strip() else {}
    except ValueError as exc:
        raise InvalidBody(f"the body is not valid JSON: {exc}") from None


def _wants_validation(request: Request) -> bool:
    return request.query_params.get("validate", "true").lower() not in {"false", "0", "no"}


def _check_schema(
    dialect: Dialect, action: str, payload: Any, *, response: bool, method: str
) -> None:
    """Raise `SchemaViolation` with every violation, unless the payload fits its schema."""
    violations = dialect.validate(action, payload, response)
    if violations:
        direction = "response" if response else "request"
        raise SchemaViolation(
            f"the payload breaks the {action} {direction} schema "
            f"({method} with ?validate=false to {'save' if response else 'send'} it anyway)",
            [violation.as_dict() for violation in violations],
        )


async def charger(request: Request) -> Response:
    identity = path_identity(request)
    return JSONResponse(await services_of(request).central.status(identity))


def _charger_action(request: Request) -> str:
    """The path's action, or `UnknownAction` when a charger does not send it."""
    action: str = request.path_params["action"]
    dialect = services_of(request).dialect
    if not dialect.is_charger_action(action):
        raise UnknownAction(
            f"{action!r} is not an action a charger sends in {dialect.name}",
            actions=dialect.charger_actions,
        )
    return action


async def response_rule(request: Request) -> Response:
    """GET/PUT/DELETE /api/chargers/{identity}/responses/{Action}: a rule or a sequence."""
    identity = path_identity(request)
    action = _charger_action(request)
    services = services_of(request)
    central = services.central
    if request.method == "GET":
        settings = await central.responder_settings(identity)
        return JSONResponse(settings.configured(action).to_json())
    if request.method == "DELETE":
        await central.set_rule(identity, action, None)
        return JSONResponse(DEFAULT_RULE.to_json())
    rule = rule_from_json(await json_body(request))
    if _wants_validation(request):
        _check_answers(services.dialect, action, rule)
    await central.set_rule(identity, action, rule)
    return JSONResponse(rule.to_json())


def _check_answers(dialect: Dialect, action: str, rule: AnyRule) -> None:
    """Raise `SchemaViolation` with every violation of every custom or manual payload (in a
    sequence, each violation names its step)."""
    steps = [step.rule for step in rule.steps] if isinstance(rule, Sequence) else [rule]
    violations: list[dict[str, str]] = []
    broken: list[str] = []
    for number, step in enumerate(steps, 1):
        if step.payload is None or step.mode not in {"custom", "manual"}:
            continue
        found = dialect.validate(action, fill_for_validation(step.payload), True)
        if found and isinstance(rule, Sequence):
            broken.append(str(number))
            violations += [{**violation.as_dict(), "step": str(number)} for violation in found]
        else:
            violations += [violation.as_dict() for violation in found]
    if violations:
        where = f"the payload of step {', '.join(broken)}" if broken else "the payload"
        raise SchemaViolation(
            f"{where} breaks the {action} response schema "
            "(PUT with ?validate=false to save it anyway)",
            violations,
        )


async def restart_sequence(request: Request) -> Response:
    """POST /api/chargers/{identity}/responses/{Action}/restart: the sequence starts over."""
    identity = path_identity(request)
    action = _charger_action(request)
    await services_of(request).central.restart_sequence(identity, action)
    return JSONResponse({"position": 0})


async def recording(request: Request) -> Response:
    """POST/GET/DELETE /api/chargers/{identity}/recording: start or stop (`{"on": false}`)
    recording, download it as NDJSON, or discard it."""
    identity = path_identity(request)
    central = services_of(request).central
    if request.method == "POST":
        body = await json_body(request)
        on = body.get("on", True) if isinstance(body, dict) else True
        if not isinstance(on, bool):
            raise InvalidBody('"on" must be true or false')
        state = await (central.start_recording if on else central.stop_recording)(identity)
        return JSONResponse(state)
    if request.method == "DELETE":
        await central.discard_recording(identity)
        return JSONResponse({"on": False, "started": None, "truncated": False})
    return recording_download(identity, await central.recording(identity))


def recording_download(identity: str, text: str) -> Response:
    """A recording as the file a browser saves (times in the name are UTC)."""
    name = "".join(char if char.isalnum() or char in "-_." else "_" for char in identity)
    return Response(
        text,
        media_type="application/x-ndjson",
        headers={"Content-Disposition": f'attachment; filename="ocpplab-{name}.ndjson"'},
    )


async def validation(request: Request) -> Response:
    """GET/PUT /api/chargers/{identity}/validation: `{"validation": "lenient" | "strict"}`."""
    identity = path_identity(request)
    central = services_of(request).central
    if request.method == "PUT":
        body = await json_body(request)
        policy = body.get("validation") if isinstance(body, dict) else None
        settings = await central.set_validation(identity, str(policy))
    else:
        settings = await central.responder_settings(identity)
    return JSONResponse({"validation": settings.validation})


async def call(request: Request) -> Response:
    """POST /api/chargers/{identity}/calls/{Action}: the body is the payload."""
    identity = path_identity(request)
    action = request.path_params["action"]
    services = services_of(request)
    dialect = services.dialect
    if not dialect.is_central_action(action):
        raise UnknownAction(
            f"{action!r} is not an action a central system sends in {dialect.name}",
            actions=dialect.central_actions,
        )
    payload = await json_body(request)
    if _wants_validation(request):
        _check_schema(dialect, action, payload, response=False, method="POST")
    concurrent = request.query_params.get("concurrent", "false").lower() in {"true", "1", "yes"}
    outcome = await services_of(request).central.call(
        identity, action, payload, concurrent=concurrent
    )
    if outcome.outcome == "result":
        headers = {"X-Unique-Id": outcome.unique_id}
        if outcome.rtt_ms is not None:
            headers["X-Round-Trip-Ms"] = str(outcome.rtt_ms)
        return JSONResponse(outcome.payload, headers=headers)
    if outcome.outcome == "error":
        return json_error(
            502,
            "the charger answered with a CALLERROR",
            callerror=outcome.error,
            unique_id=outcome.unique_id,
        )
    if outcome.outcome == "timeout":
        raise CallTimeout(
            f"the charger did not answer {action} in time", unique_id=outcome.unique_id
        )
    return json_error(
        409, f"the call was not answered: {outcome.outcome}", unique_id=outcome.unique_id
    )


async def frames(request: Request) -> Response:
    """POST /api/chargers/{identity}/frames: the body goes to the charger exactly as given.

    Like every API request that changes something, it must say `Content-Type:
    application/json` (the request guard refuses others: a page of another site cannot
    send that type), but the body itself need not be valid JSON: that is for experiments.
    """
    identity = path_identity(request)
    body = (await request.body()).decode("utf-8", errors="replace")
    await services_of(request).central.send_frame(identity, body)
    return JSONResponse({"sent": True}, status_code=202)


async def held(request: Request) -> Response:
    """POST /api/chargers/{identity}/held/{unique_id}: answer a call held by a manual rule.

    Body: `{"payload": {...}}`, `{"error": {"code": ..., "description": ...}}` or
    `{"ignore": true}`. 200 when this answer reached the charger's gateway first, 410 when
    the call was no longer held.
    """
    identity = path_identity(request)
    reply = await json_body(request)
    if not isinstance(reply, dict) or not {"payload", "error", "ignore"} & set(reply):
        raise InvalidBody('the body is {"payload": {...}}, {"error": {...}} or {"ignore": true}')
    unique_id = request.path_params["unique_id"]
    if not await services_of(request).central.answer_held(identity, unique_id, reply):
        raise NoLongerHeld("this call is no longer held: it was answered or timed out")
    return JSONResponse({"answered": True})
