"""The Operations panel: send any central-system call, or any raw frame, to the charger.

OCPP 1.6 chapter 5 lists what a central system may ask of a charge point, grouped by
feature profile (section 3.1); the 1.6 security whitepaper adds seven more. Each action
opens a form generated from its request schema and pre-filled with a valid example
(the dialect's `example_request`); "Edit as JSON" is the way to anything a form cannot
express, and "Send anyway" the way to payloads the schema forbids. A raw-frame box sends
any text at all.

Forms post back over HTTP and are answered with HTML fragments (the page's htmx config
swaps 4xx and 5xx answers too): 200 when the request was carried out, whatever the
charger then answers; 422 when what was typed cannot be sent (every problem next to its
field, nothing typed lost); 409 when no charger of that identity is connected (nothing is
queued); 403 for a post from another site; 503 when the broker is unreachable.

The life of every call (queued → sent → answered, CALLERROR or timed out), whether sent
from a form or through the API, reaches every open page through its live socket as rows
of the Calls list, rendered by `CallList` from the gateway's queued/sent/outcome events.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import uuid
import weakref
from collections.abc import Mapping
from typing import Any, Literal

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from ocpplab.core import frames, messages, schemas
from ocpplab.core.dialect import Dialect
from ocpplab.core.errors import BrokerError, NotFound, UnknownAction
from ocpplab.core.messages import Event, Queued, ReplayEvent, Sent
from ocpplab.core.responder import NOW, format_time, substitute
from ocpplab.server.central import Outcome
from ocpplab.web.errors import ANSWERED, Kind, path_identity, refusal, text_errors
from ocpplab.web.forms import (
    Field,
    Problem,
    attach_violations,
    build_fields,
    help_for,
    new_violations,
    read_form,
)
from ocpplab.web.services import ExtraRenderer, Services, services_of
from ocpplab.web.templating import render_block

TEMPLATE = "_operations.html"
MAX_CALL_ROWS = 30
CallEvent = Queued | Sent | messages.Outcome  # what moves a row of the Calls list
CALL_EVENTS = tuple(cls.tag for cls in (Queued, Sent, messages.Outcome))

# One line per action, so a person learning OCPP knows what a form will ask of the charger.
ACTION_HELP: dict[str, str] = {
    "CancelReservation": "Cancel a reservation by its id (OCPP 1.6 section 5.1).",
    "ChangeAvailability": "Make a connector, or the whole charger (connector 0), "
    "Operative or Inoperative (5.2).",
    "ChangeConfiguration": "Set one configuration key to a new value (5.3).",
    "ClearCache": "Empty the charger's authorization cache (5.4).",
    "ClearChargingProfile": "Remove the charging profiles that match; all of them when "
    "every field is left out (5.5).",
    "DataTransfer": "Vendor-specific data; the charger answers with a status (5.6).",
    "GetCompositeSchedule": "The schedule that all profiles on a connector add up to (5.7).",
    "GetConfiguration": "Read configuration keys; all of them when key is left out (5.8).",
    "GetDiagnostics": "Ask the charger to upload a diagnostics file to a location (5.9).",
    "GetLocalListVersion": "The version of the charger's local authorization list (5.10).",
    "RemoteStartTransaction": "Ask the charger to start charging for an idTag (5.11).",
    "RemoteStopTransaction": "Ask the charger to stop a running transaction (5.12).",
    "ReserveNow": "Reserve a connector for an idTag until expiryDate (5.13).",
    "Reset": "Reboot the charger: Soft ends transactions first, Hard at once (5.14).",
    "SendLocalList": "Replace (Full) or change (Differential) the local authorization list (5.15).",
    "SetChargingProfile": "Install a charging profile: current or power limits over time (5.16).",
    "TriggerMessage": "Ask the charger to send a message now, such as a StatusNotification (5.17).",
    "UnlockConnector": "Release the cable lock of a connector (5.18).",
    "UpdateFirmware": "Ask the charger to download and install firmware (5.19).",
    "ExtendedTriggerMessage": "TriggerMessage that can also ask for security messages "
    "(security whitepaper).",
    "CertificateSigned": "The signed certificate chain, after the charger's "
    "SignCertificate (security whitepaper).",
    "InstallCertificate": "Install a root certificate on the charger (security whitepaper).",
    "DeleteCertificate": "Remove an installed certificate, named by its hashes "
    "(security whitepaper).",
    "GetInstalledCertificateIds": "List the charger's root certificates of a type "
    "(security whitepaper).",
    "GetLog": "Ask the charger to upload a diagnostics or security log (security whitepaper).",
    "SignedUpdateFirmware": "Firmware update with signing certificate and signature "
    "(security whitepaper).",
}

# Starting points for the raw-frame box: each breaks OCPP-J (or the schemas) in its own way.
RAW_EXAMPLES: dict[str, tuple[str, str]] = {
    "call": ("A valid CALL", '[2, "{id}", "Reset", {{"type": "Soft"}}]'),
    "unknown-action": ("Made-up action", '[2, "{id}", "MakeCoffee", {{}}]'),
    "bad-payload": ("Schema violation", '[2, "{id}", "Reset", {{"type": "Sideways"}}]'),
    "broken-json": ("Broken JSON", '[2, "{id}", "Reset", {{"type": "Soft"}}'),
    "stray-result": ("CALLRESULT for no call", '[3, "{id}", {{}}]'),
}


def raw_example(key: str) -> str:
    """A raw-frame example with a fresh unique id (OCPP-J 1.6 section 4.1.4: ≤ 36 chars)."""
    return RAW_EXAMPLES[key][1].format(id="raw-" + uuid.uuid4().hex[:8])


def with_now(payload: Any, now: datetime.datetime) -> Any:
    """`{now}` anywhere in the payload becomes the time of sending, UTC with `Z`."""
    return substitute(payload, {NOW: format_time(now)})[0]


def _pretty(payload: Any) -> str:
    return json.dumps(payload, indent=2, ensure_ascii=False)


def _lf(text: str) -> str:
    """Browsers submit a textarea's line breaks as CRLF (HTML, "form submission"); the
    person typed LF, and LF is what goes to the charger."""
    return text.replace("\r\n", "\n")


# The operation form


@dataclasses.dataclass
class OperationForm:
    """One action's form, as shown: values as typed and problems at their fields."""

    action: str
    fields: list[Field]
    payload_json: str
    json_shown: str  # the JSON as last rendered, to tell whether the person edited it
    source: Literal["form", "json"] = "form"
    skip_validation: bool = False
    concurrent: bool = False
    json_error: str = ""
    profile: str = ""  # the feature profile the action belongs to

    @property
    def help(self) -> str:
        return ACTION_HELP.get(self.action, "")

    @property
    def other_problems(self) -> list[Problem]:
        """Problems outside the generated fields, for the form's summary (`_fields.html`)."""
        return [Problem("Payload as JSON", self.json_error, "json")] if self.json_error else []

    @classmethod
    def prefilled(cls, dialect: Dialect, action: str, payload: dict[str, Any]) -> OperationForm:
        text = _pretty(payload)
        describe = help_for(dialect, action, False)
        fields = build_fields(dialect.schema(action, False), payload, describe=describe)
        return cls(action, fields, text, text, profile=dialect.profile_of(action) or "")


@dataclasses.dataclass
class Feedback:
    """What the page says under a form after a post."""

    kind: Literal["", "sent"] | Kind = ""
    action: str = ""
    unique_id: str = ""
    problems: list[str] = dataclasses.field(default_factory=list)


def read_operation(
    dialect: Dialect, action: str, submitted: Mapping[str, str], now: datetime.datetime
) -> tuple[OperationForm, Any, list[str]]:
    """Read a posted operation form: the form as typed, the payload to send, the problems.

    The payload can be sent only when there are no problems, and all of them are found in
    one round: values that cannot be read are marked at their fields, and what could be
    read is checked against the schema at once (a form with "abc" in a number field and a
    required field left empty shows both). Whichever editor was used (fields or JSON), the
    other one is brought in line with what was sent, except a JSON text the person edited
    and did not send: that stays as typed.
    """
    typed_json = submitted.get("json", "")
    describe = help_for(dialect, action, False)
    schema = dialect.schema(action, False)
    form = OperationForm(
        action,
        build_fields(schema, {}, describe=describe),
        typed_json,
        submitted.get("json_shown", ""),
        "json" if submitted.get("source") == "json" else "form",
        skip_validation=submitted.get("skip_validation") == "on",
        concurrent=submitted.get("concurrent") == "on",
        profile=dialect.profile_of(action) or "",
    )
    payload, fields_ok = read_form(form.fields, submitted)
    if form.source == "json":
        try:
            payload = frames.loads(typed_json)
        except ValueError as exc:
            _clear_errors(form.fields)
            form.json_error = f"This is not valid JSON: {exc}"
            return form, None, ["The JSON cannot be read; see the message under it."]
        form.fields = build_fields(schema, payload, describe=describe)
        form.json_shown, fields_ok = typed_json, True
    elif fields_ok and typed_json.strip() == form.json_shown.strip():
        form.payload_json = form.json_shown = _pretty(payload)
    payload = with_now(payload, now)
    found = [] if fields_ok else ["some values cannot be read"]
    if form.skip_validation:
        return form, payload, _headline(found)
    violations = new_violations(form.fields, dialect.validate(action, payload, False))
    leftover = attach_violations(form.fields, violations)
    if form.source == "json":
        leftover = [f"{item.path}: {item.message} ({item.code})" for item in violations]
    if violations:
        found.append(
            f"the payload breaks the {action} request schema in "
            f"{schemas.violation_count(violations)} place(s)"
        )
    return form, payload, _headline(found) + leftover


def _headline(found: list[str]) -> list[str]:
    """The first line under a form that cannot be sent: what is wrong, and the way out."""
    if not found:
        return []
    text = " and ".join(found)
    way_out = "Fix them (each is marked at its field)"
    if found[-1].startswith("the payload breaks"):
        way_out += ", or tick “Send anyway” to send the schema violations as they are"
    return [f"{text[0].upper()}{text[1:]}. {way_out}."]


def _clear_errors(fields: list[Field]) -> None:
    for field in fields:
        field.errors.clear()
        _clear_errors(field.children)


async def _prefill(services: Services, identity: str, action: str) -> dict[str, Any]:
    """The example request, made to fit this charger where its state tells how."""
    payload = services.dialect.example_request(action, services.clock.now())
    if action == "RemoteStopTransaction":
        running = await _running_transaction(services, identity)
        if running is not None:
            payload["transactionId"] = running
    return payload


async def _running_transaction(services: Services, identity: str) -> int | None:
    try:
        status = await services.central.status(identity)
    except BrokerError:
        return None
    state = status.get("state") or {}
    running = [
        tx.get("transaction_id")
        for tx in state.get("transactions") or []
        if isinstance(tx, dict) and not tx.get("stopped")
    ]
    last = running[-1] if running else None
    return last if isinstance(last, int) else None


# The raw-frame box and the one-step ChangeConfiguration


@dataclasses.dataclass
class RawForm:
    text: str
    error: str = ""
    focus: bool = False


@dataclasses.dataclass
class RawFeedback:
    kind: Literal["", "sent"] | Kind = ""
    length: int = 0
    detail: str = ""


@dataclasses.dataclass(frozen=True)
class ChangeResult:
    """The answer to a ChangeConfiguration sent from a GetConfiguration table row."""

    ok: bool
    text: str

    @classmethod
    def from_outcome(cls, outcome: Outcome) -> ChangeResult:
        if outcome.outcome == "result":
            payload = outcome.payload if isinstance(outcome.payload, dict) else {}
            status = str(payload.get("status", "no status"))
            return cls(status in {"Accepted", "RebootRequired"}, f"{status} ({outcome.rtt_ms} ms)")
        if outcome.outcome == "error":
            error = outcome.error or {}
            return cls(False, f"CALLERROR {error.get('code')}: {error.get('description') or ''}")
        if outcome.outcome == "timeout":
            return cls(False, "No answer in time")
        return cls(False, f"Not answered: {outcome.outcome}")


@dataclasses.dataclass(frozen=True)
class ConfigRow:
    key: str
    value: str | None
    readonly: bool


def configuration_rows(payload: Any) -> tuple[list[ConfigRow], list[str]]:
    """GetConfiguration.conf as table rows (key, value, readonly) and the unknown keys.

    Tolerant of what chargers send (QUIRKS.md): values that are numbers are shown as
    such, entries that are not objects are skipped.
    """
    payload = payload if isinstance(payload, dict) else {}
    rows = []
    for entry in payload.get("configurationKey") or []:
        if not isinstance(entry, dict) or "key" not in entry:
            continue
        value = entry.get("value")
        if value is not None and not isinstance(value, str):
            value = json.dumps(value, ensure_ascii=False)
        rows.append(ConfigRow(str(entry["key"]), value, entry.get("readonly") is True))
    unknown = [str(key) for key in payload.get("unknownKey") or []]
    return rows, unknown


# The Calls list on every open page


def call_view(event: CallEvent) -> dict[str, Any]:
    """What a row of the Calls list shows, from the latest event of that call."""
    state = event.outcome if isinstance(event, messages.Outcome) else event.kind
    payload = event.payload if isinstance(event, messages.Outcome | Queued) else None
    error = event.error if isinstance(event, messages.Outcome) else None
    view: dict[str, Any] = {
        "unique_id": event.unique_id,
        "action": event.action,
        "state": "waiting" if state == "sent" else state,
        "position": event.position if isinstance(event, Queued) else None,
        "timeout": event.timeout if isinstance(event, Sent) else None,
        "deadline": _deadline(event) if isinstance(event, Sent) else None,
        "rtt_ms": event.rtt_ms if isinstance(event, messages.Outcome) else None,
        "payload": payload,
        "error": {"code": "", "description": "", "details": {}, **(error or {})},
        "violations": event.violations if isinstance(event, messages.Outcome) else [],
        "status": None,
        "config": None,
        "unknown_keys": [],
    }
    if state == "result" and isinstance(payload, dict):
        status = payload.get("status")
        view["status"] = status if isinstance(status, str) else None
        if view["action"] == "GetConfiguration":
            view["config"], view["unknown_keys"] = configuration_rows(payload)
    return view


def _deadline(event: Sent) -> str | None:
    try:
        sent = datetime.datetime.fromisoformat(event.at)
    except ValueError:
        return None
    return format_time(sent + datetime.timedelta(seconds=event.timeout))


class CallList:
    """Keeps each open page's Calls list current from the gateway's call events.

    A row is inserted the first time a page hears of a call and replaced as the call
    moves on; the oldest rows leave past `MAX_CALL_ROWS`. A replay (a page that just
    connected) rebuilds the whole list, so a reconnected page shows no row twice.
    """

    def __init__(self, services: Services) -> None:
        self.services = services
        self._rows: weakref.WeakKeyDictionary[Any, dict[str, None]] = weakref.WeakKeyDictionary()

    def on_event(self, page: Any, event: Event) -> str:
        if not isinstance(event, CallEvent):
            return ""
        rows = self._rows.setdefault(page, {})
        unique_id = event.unique_id
        known, first = unique_id in rows, not rows
        dropped: list[str] = []
        if not known:
            rows[unique_id] = None
            while len(rows) > MAX_CALL_ROWS:
                oldest = next(iter(rows))
                del rows[oldest]
                dropped.append(oldest)
        update = {"insert": not known, "first": first, "dropped": dropped}
        return self._render(
            page, "call_update", call=call_view(event), call_oob=known, op_update=update
        )

    def on_replay(self, page: Any, replay: Event) -> str:
        if not isinstance(replay, ReplayEvent):
            return ""
        latest: dict[str, CallEvent] = {}
        for event in replay.events:
            if isinstance(event, CallEvent):
                latest[event.unique_id] = event
        if not latest:
            return ""
        kept = list(latest.items())[-MAX_CALL_ROWS:]
        self._rows[page] = {unique_id: None for unique_id, _ in kept}
        calls = [call_view(event) for _, event in reversed(kept)]
        return self._render(page, "calls_list", op_calls=calls, oob=True)

    def _render(self, page: Any, block: str, **context: Any) -> str:
        return render_block(
            self.services.templates,
            TEMPLATE,
            block,
            identity=page.identity,
            connection=page.websocket,
            **context,
        )


def _chain(first: ExtraRenderer | None, second: ExtraRenderer) -> ExtraRenderer:
    """Another panel may render the same kind of event: both get their say."""
    if first is None:
        return second
    return lambda page, event: first(page, event) + second(page, event)


def install(services: Services) -> None:
    """Register the Calls list's live-fragment renderers."""
    calls = CallList(services)
    renderers = services.extra_renderers
    for kind in CALL_EVENTS:
        renderers[kind] = _chain(renderers.get(kind), calls.on_event)
    renderers["replay"] = _chain(renderers.get("replay"), calls.on_replay)


async def page_context(services: Services, identity: str) -> dict[str, Any]:
    """The panel on the charger page: the action picker, an empty Calls list, the raw box."""
    return {
        "op_raw": RawForm(raw_example("call")),
        "op_raw_examples": RAW_EXAMPLES,
        "op_timeout": services.settings.call_timeout,
    }


# HTTP handlers


def _checked(request: Request, *, action: str | None = None) -> str:
    """The identity of the path, or the error that says why this request cannot be served."""
    identity = path_identity(request)
    dialect = services_of(request).dialect
    if action is not None and not dialect.is_central_action(action):
        raise UnknownAction(f"{action!r} is not an action a central system sends in {dialect.name}")
    return identity


def _render(request: Request, *blocks: tuple[str, dict[str, Any]], status: int = 200) -> Response:
    """One or more blocks of the panel's template, as one HTML answer."""
    templates = services_of(request).templates
    identity = request.path_params["identity"]
    html = "".join(
        render_block(templates, TEMPLATE, block, identity=identity, connection=request, **context)
        for block, context in blocks
    )
    return HTMLResponse(html, status_code=status)


async def _submitted(request: Request) -> dict[str, str]:
    form = await request.form()
    return {key: _lf(value) for key, value in form.items() if isinstance(value, str)}


@text_errors()
async def operation_form(request: Request) -> Response:
    """GET: the picker with the chosen action's form, pre-filled with a valid example."""
    action = request.path_params["action"]
    identity = _checked(request, action=action)
    services = services_of(request)
    payload = await _prefill(services, identity, action)
    context = {
        "op_form": OperationForm.prefilled(services.dialect, action, payload),
        "op_current": action,
        "op_focus": True,
        "op_feedback": Feedback(),
    }
    return _render(request, ("workspace", context))


@text_errors("Not sent")
async def send_operation(request: Request) -> Response:
    """POST: check the payload, then send the CALL through the charger's gateway."""
    action = request.path_params["action"]
    identity = _checked(request, action=action)
    services = services_of(request)
    form, payload, problems = read_operation(
        services.dialect, action, await _submitted(request), services.clock.now()
    )
    feedback, status = Feedback("invalid", action, problems=problems), 422
    if not problems:
        feedback, status = await _send(services, identity, form, payload)
    return _render(
        request,
        ("operation_form", {"op_form": form}),
        ("feedback", {"op_feedback": feedback, "op_feedback_oob": True}),
        status=status,
    )


async def _send(
    services: Services, identity: str, form: OperationForm, payload: Any
) -> tuple[Feedback, int]:
    unique_id = str(uuid.uuid4())
    try:
        await services.central.call(
            identity,
            form.action,
            payload,
            concurrent=form.concurrent,
            unique_id=unique_id,
            wait=False,
        )
    except ANSWERED as exc:
        refused = refusal(exc)
        return Feedback(refused.kind, form.action, problems=[refused.message]), refused.status
    return Feedback("sent", form.action, unique_id), 200


@text_errors()
async def raw_example_form(request: Request) -> Response:
    """GET: the raw-frame box, filled with one of the examples."""
    _checked(request)
    key = request.query_params.get("example", "call")
    if key not in RAW_EXAMPLES:
        raise NotFound(f"no raw-frame example {key!r}")
    return _render(request, ("raw_form", {"op_raw": RawForm(raw_example(key), focus=True)}))


@text_errors("Not sent")
async def send_raw(request: Request) -> Response:
    """POST: send the text exactly as typed (`CentralSystem.send_frame`), valid or not."""
    identity = _checked(request)
    text = (await _submitted(request)).get("text", "")
    form, feedback, status = RawForm(text), RawFeedback("sent", len(text)), 200
    if not text:
        form.error, status = "Type the text to send.", 422
        feedback = RawFeedback()
    else:
        try:
            await services_of(request).central.send_frame(identity, text)
        except ANSWERED as exc:
            refused = refusal(exc)
            feedback, status = RawFeedback(refused.kind, detail=refused.message), refused.status
    return _render(
        request,
        ("raw_form", {"op_raw": form}),
        ("raw_feedback", {"op_raw_feedback": feedback, "op_feedback_oob": True}),
        status=status,
    )


@text_errors("Not changed")
async def change_configuration(request: Request) -> Response:
    """POST: ChangeConfiguration(key, value) from a GetConfiguration row; waits for the answer."""
    identity = _checked(request)
    submitted = await _submitted(request)
    payload = {"key": submitted.get("key", ""), "value": submitted.get("value", "")}
    result, status = await _change(services_of(request), identity, payload)
    return _render(request, ("change_result", {"op_change": result}), status=status)


async def _change(
    services: Services, identity: str, payload: dict[str, str]
) -> tuple[ChangeResult, int]:
    violations = services.dialect.validate("ChangeConfiguration", payload, False)
    if violations:
        text = "; ".join(f"{item.path}: {item.message}" for item in violations)
        return ChangeResult(False, f"Not sent: {text}"), 422
    try:
        outcome = await services.central.call(identity, "ChangeConfiguration", payload)
    except ANSWERED as exc:
        refused = refusal(exc)
        return ChangeResult(False, refused.sentence("Not changed")), refused.status
    return ChangeResult.from_outcome(outcome), 200


@text_errors("Not cancelled")
async def cancel_call(request: Request) -> Response:
    """POST: take a queued call out of the queue before it is sent (an outcome follows)."""
    identity = _checked(request)
    unique_id = (await _submitted(request)).get("unique_id", "")
    await services_of(request).central.cancel(identity, unique_id)
    return Response(status_code=204)


routes: list[BaseRoute] = [
    Route(
        "/chargers/{identity:identity}/operations/{action}",
        operation_form,
        methods=["GET"],
        name="operation_form",
    ),
    Route(
        "/chargers/{identity:identity}/operations/{action}",
        send_operation,
        methods=["POST"],
        name="operation_send",
    ),
    Route(
        "/chargers/{identity:identity}/raw",
        raw_example_form,
        methods=["GET"],
        name="operation_raw_example",
    ),
    Route("/chargers/{identity:identity}/raw", send_raw, methods=["POST"], name="operation_raw"),
    Route(
        "/chargers/{identity:identity}/configuration",
        change_configuration,
        methods=["POST"],
        name="operation_change_configuration",
    ),
    Route(
        "/chargers/{identity:identity}/cancel",
        cancel_call,
        methods=["POST"],
        name="operation_cancel",
    ),
]
