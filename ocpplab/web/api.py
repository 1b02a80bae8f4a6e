"""The JSON API: the same operations as the dashboard's forms, for scripts.

Status codes (DESIGN.md): 200 with the charger's CALLRESULT payload, 502 with its CALLERROR,
504 on timeout, 409 when no charger of that identity is connected, 422 for a payload or
rule that cannot be used (with every reason).
"""

from __future__ import annotations

import json
from typing import Any

from starlette import responses
from starlette.requests import Request
from starlette.responses import Response

from ocpplab.core import schemas
from ocpplab.core.errors import (
    BrokerError,
    CallTimeout,
    ChargerOffline,
    InvalidRule,
    UnknownAction,
)
from ocpplab.core.frames import dumps_compact
from ocpplab.core.identity import identity_problem
from ocpplab.core.responder import DEFAULT_RULE, Rule
from ocpplab.web.forms import fill_for_validation
from ocpplab.web.services import services_of


class JSONResponse(responses.JSONResponse):
    """JSON as OCPP-J frames are written: a lone surrogate a charger sent is kept escaped.

    Starlette's encoder writes such a character raw, which cannot be encoded as UTF-8.
    """

    def render(self, content: Any) -> bytes:
        return dumps_compact(content).encode()


def error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


def _identity(request: Request) -> tuple[str, JSONResponse | None]:
    identity: str = request.path_params["identity"]
    problem = identity_problem(identity, services_of(request).settings.max_identity_length)
    return identity, error(400, problem) if problem else None


async def _json_body(request: Request) -> Any:
    body = await request.body()
    try:
        return json.loads(body) if body.strip() else {}
    except ValueError as exc:
        raise InvalidRule(f"the body is not valid JSON: {exc}") from None


def _wants_validation(request: Request) -> bool:
    return request.query_params.get("validate", "true").lower() not in {"false", "0", "no"}


async def charger(request: Request) -> Response:
    identity, problem = _identity(request)
    if problem:
        return problem
    try:
        status = await services_of(request).central.status(identity)
    except BrokerError as exc:
        return error(503, str(exc))
    return JSONResponse(status)


async def response_rule(request: Request) -> Response:
    """GET/PUT/DELETE /api/chargers/{identity}/responses/{Action}."""
    identity, problem = _identity(request)
    if problem:
        return problem
    action = request.path_params["action"]
    if action not in schemas.CHARGER_ACTIONS:
        return error(
            404,
            f"{action!r} is not an action a charger sends in OCPP 1.6",
            actions=list(schemas.CHARGER_ACTIONS),
        )
    central = services_of(request).central
    try:
        if request.method == "GET":
            settings = await central.responder_settings(identity)
            return JSONResponse(settings.rule(action).to_json())
        if request.method == "DELETE":
            await central.set_rule(identity, action, None)
            return JSONResponse(DEFAULT_RULE.to_json())
        rule = Rule.from_json(await _json_body(request))
        if (
            rule.payload is not None
            and rule.mode in {"custom", "manual"}
            and _wants_validation(request)
        ):
            payload = fill_for_validation(rule.payload)
            violations = schemas.validate(action, payload, response=True)
            if violations:
                return error(
                    422,
                    f"the payload breaks the {action} response schema "
                    "(PUT with ?validate=false to save it anyway)",
                    violations=[violation.as_dict() for violation in violations],
                )
        await central.set_rule(identity, action, rule)
        return JSONResponse(rule.to_json())
    except InvalidRule as exc:
        return error(422, str(exc))
    except BrokerError as exc:
        return error(503, str(exc))


async def call(request: Request) -> Response:
    """POST /api/chargers/{identity}/calls/{Action}: the body is the payload."""
    identity, problem = _identity(request)
    if problem:
        return problem
    action = request.path_params["action"]
    if action not in schemas.CENTRAL_ACTIONS:
        return error(
            404,
            f"{action!r} is not an action a central system sends in OCPP 1.6",
            actions=list(schemas.CENTRAL_ACTIONS),
        )
    try:
        payload = await _json_body(request)
    except InvalidRule as exc:
        return error(422, str(exc))
    if _wants_validation(request):
        violations = schemas.validate(action, payload, response=False)
        if violations:
            return error(
                422,
                f"the payload breaks the {action} request schema "
                "(POST with ?validate=false to send it anyway)",
                violations=[violation.as_dict() for violation in violations],
            )
    concurrent = request.query_params.get("concurrent", "false").lower() in {"true", "1", "yes"}
    try:
        outcome = await services_of(request).central.call(
            identity, action, payload, concurrent=concurrent
        )
    except ChargerOffline as exc:
        return error(409, str(exc))
    except (CallTimeout, UnknownAction) as exc:
        return error(504, str(exc))
    except BrokerError as exc:
        return error(503, str(exc))
    if outcome.outcome == "result":
        headers = {"X-Unique-Id": outcome.unique_id}
        if outcome.rtt_ms is not None:
            headers["X-Round-Trip-Ms"] = str(outcome.rtt_ms)
        return JSONResponse(outcome.payload, headers=headers)
    if outcome.outcome == "error":
        return error(
            502,
            "the charger answered with a CALLERROR",
            callerror=outcome.error,
            unique_id=outcome.unique_id,
        )
    if outcome.outcome == "timeout":
        return error(
            504, f"the charger did not answer {action} in time", unique_id=outcome.unique_id
        )
    return error(409, f"the call was not answered: {outcome.outcome}", unique_id=outcome.unique_id)


async def frames(request: Request) -> Response:
    """POST /api/chargers/{identity}/frames: the body goes to the charger exactly as given.

    Like every API request that changes something, it must say `Content-Type:
    application/json` (the request guard refuses others: a page of another site cannot
    send that type), but the body itself need not be valid JSON: that is for experiments.
    """
    identity, problem = _identity(request)
    if problem:
        return problem
    body = (await request.body()).decode("utf-8", errors="replace")
    try:
        await services_of(request).central.send_frame(identity, body)
    except ChargerOffline as exc:
        return error(409, str(exc))
    except BrokerError as exc:
        return error(503, str(exc))
    return JSONResponse({"sent": True}, status_code=202)


async def held(request: Request) -> Response:
    """POST /api/chargers/{identity}/held/{unique_id}: answer a call held by a manual rule.

    Body: `{"payload": {...}}`, `{"error": {"code": ..., "description": ...}}` or
    `{"ignore": true}`. 200 when this answer reached the charger's gateway first, 410 when
    the call was no longer held.
    """
    identity, problem = _identity(request)
    if problem:
        return problem
    try:
        reply = await _json_body(request)
    except InvalidRule as exc:
        return error(422, str(exc))
    if not isinstance(reply, dict) or not {"payload", "error", "ignore"} & set(reply):
        return error(422, 'the body is {"payload": {...}}, {"error": {...}} or {"ignore": true}')
    try:
        won = await services_of(request).central.answer_held(
            identity, request.path_params["unique_id"], reply
        )
    except ChargerOffline as exc:
        return error(409, str(exc))
    except BrokerError as exc:
        return error(503, str(exc))
    if not won:
        return error(410, "this call is no longer held: it was answered or timed out")
    return JSONResponse({"answered": True})
