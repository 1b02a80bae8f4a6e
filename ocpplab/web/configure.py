"""The Configure panel: a person decides how the central system answers each charger call.

Each charger-initiated action has a rule (see `responder.Rule`) or a sequence of rules
(`responder.Sequence`, entered as JSON). The form for a rule is generated from the action's
response schema; it posts back over HTTP and answers with the form again (saved, or with
every problem next to its field). Saving goes through `CentralSystem.set_rule`, which
stores the settings, tells the charger's gateway, and publishes a `settings` event that
refreshes the rule list on every open page. Where each sequence is (`sequence` events)
is shown next to its rule, with a Reset button.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from ocpplab.core import frames, schemas
from ocpplab.core.dialect import AnswerContext, Dialect
from ocpplab.core.errors import BrokerError, NotFound, UnknownAction
from ocpplab.core.frames import dumps_compact
from ocpplab.core.messages import Event, SequencePosition, SettingsChanged
from ocpplab.core.responder import (
    MAX_DELAY,
    MAX_HOLD,
    AnyRule,
    ResponderSettings,
    Sequence,
    Step,
    rule_from_json,
    sequence_problems,
)
from ocpplab.web.errors import ANSWERED, path_identity, refusal, text_errors
from ocpplab.web.forms import (
    Field,
    Problem,
    attach_violations,
    build_fields,
    fill_for_validation,
    help_for,
    new_violations,
    read_form,
)
from ocpplab.web.services import Services, services_of
from ocpplab.web.templating import render_block

TEMPLATE = "_configure.html"

# The rule form's own inputs (not generated from the schema): error key -> (label, input id
# after the form's id prefix), as templates/_configure.html names them.
OTHER_INPUTS: dict[str, tuple[str, str]] = {
    "payload_json": ("Payload as JSON", "payload-json"),
    "delay": ("Delay", "delay"),
    "timeout": ("Wait for a person", "timeout"),
    "error_details": ("CALLERROR details", "error-details"),
}


TIMES = "\N{MULTIPLICATION SIGN}"
THEN = " \N{RIGHTWARDS ARROW} "


def summary(rule: AnyRule) -> str:
    """One line that says what a rule (or a sequence) does, for the list of actions."""
    if isinstance(rule, Sequence):
        text = THEN.join(_step_summary(step) for step in rule.steps)
        return text + (" · repeat" if rule.repeat else "")
    if rule.mode == "custom":
        text = "custom: " + _short(rule.payload)
    elif rule.mode == "error":
        text = f"CALLERROR {rule.error.code if rule.error else 'GenericError'}"
    elif rule.mode == "ignore":
        text = "no answer (ignore)"
    elif rule.mode == "manual":
        timeout = f"{rule.timeout:g} s" if rule.timeout else "default timeout"
        text = f"held for a person ({timeout}, then {rule.fallback})"
    else:
        text = "default"
    if rule.delay:
        text += f" · after {rule.delay:g} s"
    return text


def _step_summary(step: Step) -> str:
    """A step in a few words: "Rejected" (times its count), "CALLERROR InternalError"."""
    rule = step.rule
    if rule.mode == "custom":
        text = _status_of(rule.payload) or "custom"
    elif rule.mode == "error":
        text = f"CALLERROR {rule.error.code if rule.error else 'GenericError'}"
    else:
        text = rule.mode
    if step.count > 1:
        text += f" {TIMES}{step.count}"
    if rule.delay:
        text += f" after {rule.delay:g} s"
    return text


def _status_of(payload: Any) -> str | None:
    """The status a payload answers with (`status`, or `idTagInfo.status`), if a word."""
    if not isinstance(payload, dict):
        return None
    info = payload.get("idTagInfo")
    status = payload.get("status", info.get("status") if isinstance(info, dict) else None)
    return status if isinstance(status, str) and len(status) <= 40 else None


def sequence_where(rule: AnyRule, position: int) -> str:
    """Where a sequence is, for its Reset line: "at step 2 of 2 (call 3)"; "" for a rule."""
    if not isinstance(rule, Sequence):
        return ""
    return _where(rule.step_index(position) + 1, len(rule.steps), position)


def _where(step: int, steps: int, position: int) -> str:
    return f"at step {step} of {steps} (call {position + 1})" if steps else ""


def _short(payload: Any) -> str:
    text = dumps_compact(payload)
    return text if len(text) <= 60 else text[:57] + "…"


@dataclasses.dataclass
class RuleForm:
    """Everything the rule form shows: values as typed, and every problem found."""

    action: str
    mode: str = "default"
    fields: list[Field] = dataclasses.field(default_factory=list)
    payload_json: str = ""
    delay: str = "0"
    timeout: str = ""
    fallback: str = "default"
    error_code: str = "GenericError"
    error_description: str = ""
    error_details: str = "{}"
    sequence_json: str = ""
    is_sequence: bool = False
    sequence_errors: list[str] = dataclasses.field(default_factory=list)  # next to the box
    errors: dict[str, str] = dataclasses.field(default_factory=dict)
    problems: list[str] = dataclasses.field(default_factory=list)
    message: str = ""
    saved: bool = False

    @property
    def other_problems(self) -> list[Problem]:
        """Problems outside the generated fields, for the form's summary (`_fields.html`)."""
        return [
            Problem(OTHER_INPUTS[name][0], message, OTHER_INPUTS[name][1])
            for name, message in self.errors.items()
            if name in OTHER_INPUTS
        ]

    @classmethod
    def from_rule(cls, action: str, configured: AnyRule, services: Services) -> RuleForm:
        """The form for what is saved; for a sequence, its JSON, and its first step in the
        other fields."""
        is_sequence = isinstance(configured, Sequence)
        if isinstance(configured, Sequence):
            rule, sequence = configured.steps[0].rule, configured
        else:
            rule, sequence = configured, Sequence((Step(configured),))
        context_payload = _proposal(action, services)
        payload = rule.payload if rule.payload is not None else context_payload
        error = rule.error
        return cls(
            sequence_json=json.dumps(sequence.to_json(), indent=2, ensure_ascii=False),
            is_sequence=is_sequence,
            action=action,
            mode=rule.mode,
            fields=build_fields(
                services.dialect.schema(action, True),
                payload,
                describe=help_for(services.dialect, action, True),
            ),
            payload_json=json.dumps(payload, indent=2, ensure_ascii=False),
            delay=f"{rule.delay:g}",
            timeout=f"{rule.timeout:g}" if rule.timeout is not None else "",
            fallback=rule.fallback,
            error_code=error.code if error else "GenericError",
            error_description=error.description if error else "",
            error_details=json.dumps(error.details if error else {}),
        )


def _proposal(action: str, services: Services) -> dict[str, Any]:
    """The default answer with placeholders, as the custom form's starting point."""
    payload = services.dialect.default_answer(action, AnswerContext(services.clock.now(), 1))
    if "currentTime" in payload:
        payload["currentTime"] = "{now}"
    if "transactionId" in payload:
        payload["transactionId"] = "{transactionId}"
    return payload


def read_rule_form(
    dialect: Dialect, action: str, form: FormData
) -> tuple[RuleForm, dict[str, Any] | None]:
    """Read a submitted rule form; returns the form (with problems) and the rule's JSON.

    Every problem is found in one round: values that cannot be read (in the payload's
    fields, the JSON boxes, the delay), and at the same time how the payload that could be
    read breaks the response schema.
    """
    text = {key: str(value) for key, value in form.items()}
    if text.get("source") == "sequence":
        return read_sequence_form(dialect, action, text)
    describe = help_for(dialect, action, True)
    schema = dialect.schema(action, True)
    state = RuleForm(
        action=action,
        mode=text.get("mode", "default"),
        fields=build_fields(schema, {}, describe=describe),
        payload_json=text.get("payload_json", ""),
        delay=text.get("delay", "0").strip() or "0",
        timeout=text.get("timeout", "").strip(),
        fallback=text.get("fallback", "default"),
        error_code=(text.get("error_code_other", "").strip() or text.get("error_code", "")),
        error_description=text.get("error_description", ""),
        error_details=text.get("error_details", "").strip() or "{}",
    )
    payload: Any
    payload, fields_ok = read_form(state.fields, text, placeholders=True)
    if text.get("source") == "json":
        try:
            payload = frames.loads(state.payload_json)
        except ValueError as exc:
            state.errors["payload_json"] = f"not valid JSON: {exc}"
            payload = None
        else:
            state.fields = build_fields(schema, payload, describe=describe)
    elif fields_ok:
        state.payload_json = json.dumps(payload, indent=2, ensure_ascii=False)
    else:
        state.problems.append("Some fields cannot be read; see the marked fields.")
    rule: dict[str, Any] = {"mode": state.mode, "fallback": state.fallback}
    rule["delay"] = _seconds(state, "delay", state.delay, 0, MAX_DELAY)
    if state.timeout:
        rule["timeout"] = _seconds(state, "timeout", state.timeout, 1, MAX_HOLD)
    if state.mode in {"custom", "manual"}:
        rule["payload"] = payload
    if state.mode == "error":
        rule["error"] = {
            "code": state.error_code,
            "description": state.error_description,
            "details": _details(state),
        }
    checked = state.mode in {"custom", "manual"} and text.get("force") != "on"
    if checked and "payload_json" not in state.errors:
        violations = dialect.validate(action, fill_for_validation(payload), True)
        violations = new_violations(state.fields, violations)
        if violations:
            leftover = attach_violations(state.fields, violations)
            state.problems.append(
                f"Not saved: the answer breaks the {action} response schema in "
                f"{schemas.violation_count(violations)} place(s). Fix them, or tick "
                "“Save anyway” to answer with an invalid payload on purpose."
            )
            state.problems.extend(leftover)
    if state.errors or state.problems:
        return state, None
    return state, rule


def read_sequence_form(
    dialect: Dialect, action: str, text: dict[str, str]
) -> tuple[RuleForm, dict[str, Any] | None]:
    """Read the "Sequence (JSON)" box: every problem of every step at once, next to it."""
    state = RuleForm(
        action=action,
        fields=build_fields(
            dialect.schema(action, True), {}, describe=help_for(dialect, action, True)
        ),
        sequence_json=text.get("sequence_json", ""),
        is_sequence=True,
    )
    try:
        data = frames.loads(state.sequence_json)
    except ValueError as exc:
        state.sequence_errors.append(f"not valid JSON: {exc}")
        return state, None
    if isinstance(data, list):  # the steps alone
        data = {"sequence": data}
    problems = sequence_problems(data)
    if not problems and text.get("force") != "on":
        for number, step in enumerate(data["sequence"], 1):
            payload = step.get("payload")
            if step.get("mode") in {"custom", "manual"} and payload is not None:
                violations = dialect.validate(action, fill_for_validation(payload), True)
                problems += [
                    f"step {number}: {violation.path}: {violation.message}"
                    for violation in violations
                ]
        if problems:
            problems.append(
                f"These payloads break the {action} response schema. Fix them, or tick "
                "“Save anyway” to answer with an invalid payload on purpose."
            )
    state.sequence_errors = problems
    return state, None if problems else data


def _seconds(state: RuleForm, name: str, text: str, low: float, high: float) -> float:
    try:
        value = float(text)
    except ValueError:
        state.errors[name] = "must be a number of seconds"
        return 0.0
    if not low <= value <= high:
        state.errors[name] = f"must be between {low:g} and {high:g} seconds"
    return value


def _details(state: RuleForm) -> Any:
    try:
        details = frames.loads(state.error_details)
    except ValueError as exc:
        state.errors["error_details"] = f"not valid JSON: {exc}"
        return {}
    if not isinstance(details, dict):
        state.errors["error_details"] = "must be a JSON object, such as {}"
    return details


# HTTP handlers


def _render(request: Request, block: str, status: int = 200, **context: Any) -> HTMLResponse:
    services = services_of(request)
    html = render_block(
        services.templates,
        TEMPLATE,
        block,
        identity=request.path_params["identity"],
        connection=request,
        **context,
    )
    return HTMLResponse(html, status_code=status)


def _checked(request: Request) -> tuple[str, str]:
    """The identity and the action of the path, or the error that refuses them."""
    identity = path_identity(request)
    action: str = request.path_params.get("action", "")
    dialect = services_of(request).dialect
    if action and not dialect.is_charger_action(action):
        raise UnknownAction(f"{action!r} is not an action a charger sends in {dialect.name}")
    return identity, action


@text_errors()
async def rule_form(request: Request) -> Response:
    """GET: the form for one action's rule, as currently saved."""
    identity, action = _checked(request)
    services = services_of(request)
    settings = await services.central.responder_settings(identity)
    form = RuleForm.from_rule(action, settings.configured(action), services)
    return _render(request, "rule_form", form=form, presets=services.dialect.presets_for(action))


@text_errors("Not saved")
async def save_rule(request: Request) -> Response:
    """POST: save the rule from the form, a preset, or reset it to the default."""
    identity, action = _checked(request)
    services = services_of(request)
    presets = services.dialect.presets_for(action)
    submitted = await request.form()
    preset_key = str(submitted.get("preset", ""))
    rule_json: dict[str, Any] | None
    if submitted.get("reset"):
        form, rule_json = RuleForm(action), {"mode": "default"}
    elif preset_key:
        preset = next((item for item in presets if item.key == preset_key), None)
        if preset is None:
            raise NotFound(f"no preset {preset_key!r} for {action}")
        form, rule_json = RuleForm(action), dict(preset.rule)
    else:
        form, rule_json = read_rule_form(services.dialect, action, submitted)
    if rule_json is None:
        return _render(request, "rule_form", 422, form=form, presets=presets)
    try:
        rule = rule_from_json(rule_json)
        await services.central.set_rule(identity, action, rule)
    except ANSWERED as exc:
        refused = refusal(exc)
        form.problems.append(refused.sentence("Not saved"))
        return _render(request, "rule_form", refused.status, form=form, presets=presets)
    saved = RuleForm.from_rule(action, rule, services)
    saved.saved, saved.message = True, f"Saved: {action} is now answered with {summary(rule)}."
    return _render(request, "rule_form", form=saved, presets=presets)


@text_errors("Not restarted")
async def restart_sequence(request: Request) -> Response:
    """POST: the Reset button: the action's answer sequence starts over."""
    identity, action = _checked(request)
    services = services_of(request)
    await services.central.restart_sequence(identity, action)
    settings = await services.central.responder_settings(identity)
    where = sequence_where(settings.configured(action), 0)
    return _render(request, "sequence_position", action=action, where=where, oob=False)


@text_errors("Not saved")
async def save_validation(request: Request) -> Response:
    """POST: lenient or strict answers to calls that break the request schema."""
    identity, _ = _checked(request)
    services = services_of(request)
    policy = str((await request.form()).get("validation", ""))
    settings = await services.central.set_validation(identity, policy)
    return _render(request, "validation_form", responder=settings, message="Saved.", oob=False)


routes: list[BaseRoute] = [
    Route(
        "/chargers/{identity:identity}/rules/{action}", rule_form, methods=["GET"], name="rule_form"
    ),
    Route(
        "/chargers/{identity:identity}/rules/{action}",
        save_rule,
        methods=["POST"],
        name="save_rule",
    ),
    Route(
        "/chargers/{identity:identity}/rules/{action}/restart",
        restart_sequence,
        methods=["POST"],
        name="restart_sequence",
    ),
    Route(
        "/chargers/{identity:identity}/validation",
        save_validation,
        methods=["POST"],
        name="save_validation",
    ),
]


def _render_settings(page: Any, event: Event) -> str:
    if not isinstance(event, SettingsChanged):
        return ""
    settings = ResponderSettings.from_json(event.settings)
    summaries = "".join(
        render_block(
            page.services.templates,
            TEMPLATE,
            "rule_summary",
            identity=page.identity,
            connection=page.websocket,
            responder=settings,
            summary=summary,
            action=action,
            oob=True,
        )
        for action in page.services.dialect.charger_actions
    )
    return summaries + render_block(
        page.services.templates,
        TEMPLATE,
        "validation_form",
        identity=page.identity,
        connection=page.websocket,
        responder=settings,
        message="",
        oob=True,
    )


def _render_position(page: Any, event: Event) -> str:
    if not isinstance(event, SequencePosition):
        return ""
    return render_block(
        page.services.templates,
        TEMPLATE,
        "sequence_position",
        identity=page.identity,
        connection=page.websocket,
        action=event.action,
        where=_where(event.step, event.steps, event.position),
        oob=True,
    )


def install(services: Services) -> None:
    """Refresh the rule list on every open page when anyone changes a rule, and where its
    answer sequences are."""
    services.extra_renderers["settings"] = _render_settings
    services.extra_renderers["sequence"] = _render_position


async def page_context(services: Services, identity: str) -> dict[str, Any]:
    """What this panel needs to render on the charger page."""
    try:
        positions = await services.central.sequence_positions(identity)
    except BrokerError:
        positions = {}
    return {
        "summary": summary,
        "sequence_where": sequence_where,
        "positions": positions,
        "oob": False,
        "message": "",
    }
