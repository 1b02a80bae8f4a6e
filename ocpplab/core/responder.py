"""The responder: how the central system answers each charger-initiated call. Pure.

Settings (one `Rule` or `Sequence` of rules per action, plus the validation policy) and a
call go in; an answer comes out: a frame to send after a delay, a call to hold for a
person, or silence. A `Sequence` answers by position: the number of calls of that action
it answered before (kept per identity by the connection, `core.connection`).
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
MAX_STEPS = 20  # steps of one sequence
MAX_COUNT = 1000  # calls one step answers

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
class Step:
    """One step of a `Sequence`: `rule` answers `count` calls in a row."""

    rule: Rule
    count: int = 1

    def to_json(self) -> dict[str, Any]:
        return {**self.rule.to_json(), "count": self.count}


@dataclasses.dataclass(frozen=True, slots=True)
class Sequence:
    """Rules that take turns: "Rejected twice, then Accepted"; "answer, answer, CALLERROR,
    repeat"; "ignore the first BootNotification".

    Without `repeat`, the last step answers every call after the others; with it, the
    sequence starts over after its last step. JSON: `{"sequence": [step, …], "repeat":
    false}`, a step being a rule's JSON plus `"count"` (1 to MAX_COUNT, default 1).
    """

    steps: tuple[Step, ...]
    repeat: bool = False

    def __post_init__(self) -> None:
        if not 1 <= len(self.steps) <= MAX_STEPS:
            raise InvalidRule(f"a sequence has 1 to {MAX_STEPS} steps")
        if any(not 1 <= step.count <= MAX_COUNT for step in self.steps):
            raise InvalidRule(f"a step's count is 1 to {MAX_COUNT}")

    @property
    def length(self) -> int:
        """Calls the steps answer once through."""
        return sum(step.count for step in self.steps)

    def step_index(self, position: int) -> int:
        """The index of the step that answers the call at `position` (0-based: the number
        of calls of the action this sequence answered before)."""
        length = self.length
        if position >= length:
            if not self.repeat:
                return len(self.steps) - 1
            position %= length
        for index, step in enumerate(self.steps):
            if position < step.count:
                return index
            position -= step.count
        raise AssertionError("unreachable: position is below length")

    def rule_at(self, position: int) -> Rule:
        """The rule that answers the call at `position` (see `step_index`)."""
        return self.steps[self.step_index(max(position, 0))].rule

    @classmethod
    def from_json(cls, data: Any) -> Sequence:
        """A sequence from the API's JSON, or `InvalidRule` naming every step that is wrong."""
        problems = sequence_problems(data)
        if problems:
            raise InvalidRule("; ".join(problems))
        steps = tuple(
            Step(Rule.from_json(_without_count(step)), step.get("count", 1))
            for step in data["sequence"]
        )
        return cls(steps, data.get("repeat", False))

    def to_json(self) -> dict[str, Any]:
        return {"sequence": [step.to_json() for step in self.steps], "repeat": self.repeat}


def sequence_problems(data: Any) -> list[str]:
    """Every reason the JSON of a sequence cannot be used, each step's named ("step 2: …")."""
    if not isinstance(data, dict):
        return ["a sequence is a JSON object"]
    problems: list[str] = []
    unknown = set(data) - {"sequence", "repeat"}
    if unknown:
        problems.append(f"unknown field(s): {', '.join(sorted(unknown))}")
    if not isinstance(data.get("repeat", False), bool):
        problems.append("repeat must be true or false")
    steps = data.get("sequence")
    if not isinstance(steps, list) or not 1 <= len(steps) <= MAX_STEPS:
        return [*problems, f"sequence must be a list of 1 to {MAX_STEPS} steps"]
    for number, step in enumerate(steps, 1):
        if not isinstance(step, dict):
            problems.append(f"step {number}: a step is a JSON object")
            continue
        count = step.get("count", 1)
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_COUNT:
            problems.append(f"step {number}: count must be a whole number from 1 to {MAX_COUNT}")
        try:
            Rule.from_json(_without_count(step))
        except InvalidRule as exc:
            problems.append(f"step {number}: {exc}")
    return problems


def _without_count(step: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in step.items() if key != "count"}


AnyRule = Rule | Sequence


def rule_from_json(data: Any) -> AnyRule:
    """A rule or, when the JSON has `"sequence"`, a sequence; `InvalidRule` says what is wrong."""
    if isinstance(data, dict) and "sequence" in data:
        return Sequence.from_json(data)
    return Rule.from_json(data)


@dataclasses.dataclass(frozen=True, slots=True)
class ResponderSettings:
    """One identity's answers: a rule or a sequence per action (absent means default) and a
    policy."""

    rules: dict[str, AnyRule] = dataclasses.field(default_factory=dict)
    validation: Validation = "lenient"

    def rule(self, action: str, position: int = 0) -> Rule:
        """The rule that answers the call of `action` at `position` (see `Sequence`)."""
        configured = self.rules.get(action, DEFAULT_RULE)
        return configured.rule_at(position) if isinstance(configured, Sequence) else configured

    def configured(self, action: str) -> AnyRule:
        """What was saved for `action`: a rule or a sequence."""
        return self.rules.get(action, DEFAULT_RULE)

    def sequence(self, action: str) -> Sequence | None:
        configured = self.rules.get(action)
        return configured if isinstance(configured, Sequence) else None

    def changed(self, action: str) -> bool:
        """Whether `action` is answered otherwise than by default, at once."""
        configured = self.rules.get(action, DEFAULT_RULE)
        return isinstance(configured, Sequence) or (
            configured.mode != "default" or bool(configured.delay)
        )

    def with_rule(self, action: str, rule: AnyRule | None) -> ResponderSettings:
        rules = dict(self.rules)
        if rule is None or rule == DEFAULT_RULE:
            rules.pop(action, None)
        else:
            rules[action] = rule
        return dataclasses.replace(self, rules=rules)

    @classmethod
    def from_json(cls, data: Any, actions: Collection[str] | None = None) -> ResponderSettings:
        """Settings from their JSON; with `actions` (a dialect's charger actions), the rules
        of other actions are dropped. Every rule is checked (`rule_from_json`)."""
        if not isinstance(data, dict):
            return cls()
        rules = {
            action: rule_from_json(rule)
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
    position: int = 0,
) -> Answer:
    """Decide the answer to a charger's CALL (whose action is one a charger may send).

    `dialect`, the charger's OCPP version, gives the built-in answers; `position` is the
    number of calls of the action a sequence configured for it answered before.
    """
    rule = settings.rule(call.action, position)
    if not answers_by_rule(settings, violations):
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


def answers_by_rule(settings: ResponderSettings, violations: list[schemas.Violation]) -> bool:
    """Whether the configured rule answers, rather than the strict policy's CALLERROR (and
    so whether a sequence's position moves on)."""
    return not (violations and settings.validation == "strict")


def fallback_answer(hold: Hold, context: AnswerContext, *, dialect: Dialect) -> Reply | Silence:
    """What a held call gets when nobody answered in time: `dialect`'s built-in answer."""
    if hold.fallback == "ignore":
        return Silence("nobody answered the held call in time; fallback is ignore")
    payload = dialect.default_answer(hold.call.action, context)
    return Reply(
        CallResult(hold.call.unique_id, payload),
        uses_transaction_id=hold.call.action == dialect.transaction_action,
    )
