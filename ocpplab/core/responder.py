"""The responder: how the central system answers each charger-initiated call. Pure.

Settings (one `Rule` per action, plus the validation policy) and a call go in; an answer
comes out: a frame to send after a delay, a call to hold for a person, or silence.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
from collections.abc import Collection, Mapping
from typing import Any, Literal, get_args

from ocpplab.core import schemas
from ocpplab.core.dialect import AnswerContext, Dialect
from ocpplab.core.errors import InvalidRule
from ocpplab.core.frames import Call, CallError, CallResult

Mode = Literal["default", "custom", "error", "ignore", "manual"]
Fallback = Literal["default", "ignore"]
Validation = Literal["lenient", "strict"]

MODES: tuple[str, ...] = get_args(Mode)
FALLBACKS: tuple[str, ...] = get_args(Fallback)
VALIDATIONS: tuple[str, ...] = get_args(Validation)
MAX_DELAY = 300.0
MAX_HOLD = 3600.0

NOW = "{now}"
TRANSACTION_ID = "{transactionId}"


def format_time(moment: datetime.datetime) -> str:
    """UTC, ISO 8601 with `Z`: the one form that strict chargers accept (QUIRKS.md)."""
    # isoformat is C code (strftime was a twentieth of the server's time under load) and
    # truncates to milliseconds as the `Z` form wants.
    utc = moment if moment.tzinfo is datetime.UTC else moment.astimezone(datetime.UTC)
    return utc.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


@dataclasses.dataclass(frozen=True, slots=True)
class ErrorSpec:
    """The CALLERROR an `error` rule answers with."""

    code: str = "GenericError"
    description: str = ""
    details: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, slots=True)
class Rule:
    """How to answer one action. The JSON shape is the API's (DESIGN.md)."""

    mode: Mode = "default"
    payload: dict[str, Any] | None = None
    error: ErrorSpec | None = None
    delay: float = 0.0
    timeout: float | None = None
    fallback: Fallback = "default"

    @classmethod
    def from_json(cls, data: Any) -> Rule:
        """Build a rule from the API's JSON, or raise `InvalidRule` saying what is wrong."""
        if not isinstance(data, dict):
            raise InvalidRule("a rule is a JSON object")
        unknown = set(data) - {"mode", "payload", "error", "delay", "timeout", "fallback"}
        if unknown:
            raise InvalidRule(f"unknown field(s): {', '.join(sorted(unknown))}")
        mode = data.get("mode", "default")
        if mode not in MODES:
            raise InvalidRule(f"mode must be one of {', '.join(MODES)}")
        payload = data.get("payload")
        if payload is not None and not isinstance(payload, dict):
            raise InvalidRule("payload must be a JSON object")
        if mode == "custom" and payload is None:
            raise InvalidRule("mode custom needs a payload")
        fallback = data.get("fallback", "default")
        if fallback not in FALLBACKS:
            raise InvalidRule(f"fallback must be one of {', '.join(FALLBACKS)}")
        timeout = data.get("timeout")
        if timeout is not None:
            timeout = _number(timeout, "timeout", 1.0, MAX_HOLD)
        return cls(
            mode=mode,
            payload=payload,
            error=_error_spec(data.get("error"), required=mode == "error"),
            delay=_number(data.get("delay", 0), "delay", 0.0, MAX_DELAY),
            timeout=timeout,
            fallback=fallback,
        )

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"mode": self.mode, "delay": self.delay}
        if self.payload is not None:
            data["payload"] = self.payload
        if self.error is not None:
            data["error"] = dataclasses.asdict(self.error)
        if self.timeout is not None:
            data["timeout"] = self.timeout
        if self.mode == "manual":
            data["fallback"] = self.fallback
        return data


def _number(value: Any, name: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRule(f"{name} must be a number of seconds")
    if not math.isfinite(value) or not low <= value <= high:
        raise InvalidRule(f"{name} must be between {low:g} and {high:g} seconds")
    return float(value)


def _error_spec(data: Any, *, required: bool) -> ErrorSpec | None:
    if data is None:
        if required:
            raise InvalidRule("mode error needs an error with a code")
        return None
    if not isinstance(data, dict):
        raise InvalidRule("error must be a JSON object")
    code = data.get("code")
    if not isinstance(code, str) or not code.strip():
        raise InvalidRule("error.code must be a non-empty string, such as GenericError")
    description = data.get("description", "")
    details = data.get("details", {})
    if not isinstance(description, str):
        raise InvalidRule("error.description must be a string")
    if not isinstance(details, dict):
        raise InvalidRule("error.details must be a JSON object")
    return ErrorSpec(code.strip(), description, details)


@dataclasses.dataclass(frozen=True, slots=True)
class ResponderSettings:
    """One identity's answers: a rule per action (absent means default) and a policy."""

    rules: dict[str, Rule] = dataclasses.field(default_factory=dict)
    validation: Validation = "lenient"

    def rule(self, action: str) -> Rule:
        return self.rules.get(action, DEFAULT_RULE)

    def with_rule(self, action: str, rule: Rule | None) -> ResponderSettings:
        rules = dict(self.rules)
        if rule is None or rule == DEFAULT_RULE:
            rules.pop(action, None)
        else:
            rules[action] = rule
        return dataclasses.replace(self, rules=rules)

    @classmethod
    def from_json(cls, data: Any, actions: Collection[str] | None = None) -> ResponderSettings:
        """Settings from their JSON; with `actions` (a dialect's charger actions), the rules
        of other actions are dropped. Every rule is checked (`Rule.from_json`)."""
        if not isinstance(data, dict):
            return cls()
        rules = {
            action: Rule.from_json(rule)
            for action, rule in data.get("rules", {}).items()
            if isinstance(action, str) and (actions is None or action in actions)
        }
        validation = data.get("validation", "lenient")
        return cls(rules, validation if validation in VALIDATIONS else "lenient")

    def to_json(self) -> dict[str, Any]:
        return {
            "rules": {action: rule.to_json() for action, rule in self.rules.items()},
            "validation": self.validation,
        }


DEFAULT_RULE = Rule()


def substitute(value: Any, replacements: Mapping[str, Any]) -> tuple[Any, set[str]]:
    """`value` with every JSON string equal to a key of `replacements` replaced, at any
    depth; also which of those placeholders occurred."""
    used: set[str] = set()

    def walk(item: Any) -> Any:
        if isinstance(item, str):
            if item in replacements:
                used.add(item)
                return replacements[item]
            return item
        if isinstance(item, dict):
            return {key: walk(inner) for key, inner in item.items()}
        if isinstance(item, list):
            return [walk(inner) for inner in item]
        return item

    return walk(value), used


def fill_placeholders(value: Any, context: AnswerContext) -> tuple[Any, bool]:
    """Replace "{now}" and "{transactionId}" anywhere in a payload.

    Returns the filled payload and whether the transaction id was used, so that the next
    answer gets the next id.
    """
    filled, used = substitute(
        value, {NOW: format_time(context.now), TRANSACTION_ID: context.transaction_id}
    )
    return filled, TRANSACTION_ID in used


@dataclasses.dataclass(frozen=True, slots=True)
class Reply:
    """Send `frame` after `delay` seconds."""

    frame: CallResult | CallError
    delay: float = 0.0
    uses_transaction_id: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class Hold:
    """Wait for a person: `proposal` pre-fills the answer; `fallback` applies at the deadline."""

    call: Call
    proposal: dict[str, Any]
    timeout: float
    fallback: Fallback
    delay: float = 0.0


@dataclasses.dataclass(frozen=True, slots=True)
class Silence:
    """Answer nothing: the charger's own timeout is the experiment."""

    reason: str


Answer = Reply | Hold | Silence


def respond(
    call: Call,
    settings: ResponderSettings,
    context: AnswerContext,
    violations: list[schemas.Violation],
    *,
    manual_timeout: float,
    dialect: Dialect,
) -> Answer:
    """Decide the answer to a charger's CALL (whose action is one a charger may send).

    `dialect`, the charger's OCPP version, gives the built-in answers.
    """
    rule = settings.rule(call.action)
    if violations and settings.validation == "strict":
        # OCPP-J 1.6 section 4.2.3: one code for the whole payload, the most specific one
        # that applies (schemas.strictest_code), described by a violation of that kind.
        code = schemas.strictest_code(violations)
        details = {"violations": [violation.as_dict() for violation in violations]}
        first = next((item for item in violations if item.code == code), violations[0])
        count = schemas.violation_count(violations)
        description = f"{count} schema violation(s); {first.path}: {first.message}"
        return Reply(CallError(call.unique_id, code, description[:255], details), rule.delay)
    if rule.mode == "ignore":
        return Silence("the rule for this action is ignore")
    if rule.mode == "error":
        spec = rule.error or ErrorSpec()
        return Reply(
            CallError(call.unique_id, spec.code, spec.description, spec.details), rule.delay
        )
    base = rule.payload if rule.mode in {"custom", "manual"} and rule.payload is not None else None
    if base is None:  # the built-in answers hold no placeholders
        payload = dialect.default_answer(call.action, context)
        used = call.action == dialect.transaction_action
    else:
        payload, used = fill_placeholders(base, context)
    if rule.mode == "manual":
        timeout = rule.timeout if rule.timeout is not None else manual_timeout
        return Hold(call, payload, timeout, rule.fallback, rule.delay)
    return Reply(CallResult(call.unique_id, payload), rule.delay, used)


def fallback_answer(hold: Hold, context: AnswerContext, *, dialect: Dialect) -> Reply | Silence:
    """What a held call gets when nobody answered in time: `dialect`'s built-in answer."""
    if hold.fallback == "ignore":
        return Silence("nobody answered the held call in time; fallback is ignore")
    payload = dialect.default_answer(hold.call.action, context)
    return Reply(
        CallResult(hold.call.unique_id, payload),
        uses_transaction_id=hold.call.action == dialect.transaction_action,
    )
