"""A bounded JSON-schema validator for OCPP payloads: `SchemaSet`, one per OCPP version.

A dialect (`ocpplab.dialects`) builds a `SchemaSet` from a loader, `(action, response) ->
schema`; OCPP 1.6's loads the official schemas the `ocpp` package ships. A compiled
validator (fastjsonschema) answers the common case, a payload that is valid, quickly; only
an invalid payload is walked again with `jsonschema` to list its violations with their
JSON paths and the OCPP-J error codes they map to. Each set compiles each validator once.

Listing is bounded, because a charger chooses the payload: a 1 MiB MeterValues of half a
million bare numbers breaks its schema half a million times, and listing them all took 12 s
and 230 MiB. At most `MAX_LISTED` violations are listed, `MAX_COUNTED` counted and
`MAX_STEPS` schema keywords applied; the rest is summed up in one `Omitted`. The code strict
mode answers with stays exact all the same: whichever kinds the walk did not reach are
looked for with compiled validators of that kind's keywords alone, one pass each.
"""

from __future__ import annotations

import collections
import contextvars
import dataclasses
import functools
import re
from collections.abc import Callable
from typing import Any

import fastjsonschema
import jsonschema
import jsonschema.validators

# (action, response) -> the JSON schema of the action's request (False) or answer (True);
# KeyError for an action the version does not define.
Loader = Callable[[str, bool], dict[str, Any]]

# Which OCPP-J error code a failed JSON-schema keyword maps to (OCPP-J 1.6 section 4.2.3).
_CODE_BY_KEYWORD: dict[str, str] = {
    "type": "TypeConstraintViolation",
    "required": "OccurenceConstraintViolation",
    "minItems": "OccurenceConstraintViolation",
    "maxItems": "OccurenceConstraintViolation",
    "additionalProperties": "FormationViolation",
    "enum": "PropertyConstraintViolation",
    "maxLength": "PropertyConstraintViolation",
    "minLength": "PropertyConstraintViolation",
    "minimum": "PropertyConstraintViolation",
    "maximum": "PropertyConstraintViolation",
    "multipleOf": "PropertyConstraintViolation",
    "format": "PropertyConstraintViolation",
    "pattern": "PropertyConstraintViolation",
}
# When several kinds of violation occur, strict mode answers with the most specific code.
# OCPP-J 1.6 section 4.2.3 defines FormationViolation as a payload "syntactically incorrect
# or not conform the PDU structure": true of every schema violation, so the least specific.
# The other three presume more and more of the payload right: an occurrence constraint (a
# field missing, an array too long) presumes the structure; a type constraint, that the
# field occurs; a property constraint ("at least one field contains an invalid value": an
# enum, a length, a format), that it also has its type. The code that presumes the most
# narrows the fault down the most.
_CODE_PRIORITY = (
    "PropertyConstraintViolation",
    "TypeConstraintViolation",
    "OccurenceConstraintViolation",
    "FormationViolation",
)
# Keywords that shape the schema rather than assert anything: every kind's validator keeps them.
_STRUCTURE = frozenset(
    {"$schema", "$id", "id", "$ref", "title", "description", "javaType", "default"}
)

# How much of an invalid payload is listed, counted and walked (see the module's docstring),
# and how long a message or path may be: jsonschema's messages embed the `repr` of the
# offending value, which may be the whole payload.
MAX_LISTED = 20
MAX_COUNTED = 50
MAX_STEPS = 20_000
MAX_TEXT = 200

# RFC 3339 date-time, as the OCPP schemas' "format": "date-time" means it.
_DATE_TIME = re.compile(
    r"^\d{4}-[01]\d-[0-3]\d[tT][0-2]\d:[0-5]\d:([0-5]\d|60)(\.\d+)?([zZ]|[+-][0-2]\d:[0-5]\d)$"
)
# "format": "uri" (GetDiagnostics, UpdateFirmware), as the compiled validator checks it.
_URI = re.compile(r"^\w+:(\/?\/?)[^\s]+\Z")


@dataclasses.dataclass(frozen=True, slots=True)
class Violation:
    """One way a payload breaks its schema: where, what, and the OCPP-J code it maps to."""

    path: str
    message: str
    code: str

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message, "code": self.code}


@dataclasses.dataclass(frozen=True, slots=True)
class Omitted(Violation):
    """The violations left out of a bounded list: `count` of them, or more when the check
    stopped before it had `counted` them all."""

    count: int = 0
    counted: bool = True


def _is_date_time(value: object) -> bool:
    return not isinstance(value, str) or bool(_DATE_TIME.match(value))


def _is_uri(value: object) -> bool:
    return not isinstance(value, str) or bool(_URI.match(value))


_FORMAT_CHECKER = jsonschema.FormatChecker(formats=())
_FORMAT_CHECKER.checks("date-time")(_is_date_time)
_FORMAT_CHECKER.checks("uri")(_is_uri)
_FORMATS = {"date-time": _DATE_TIME.pattern, "uri": _URI.pattern}


def _compile(document: dict[str, Any]) -> Callable[[Any], Any]:
    compiled: Callable[[Any], Any] = fastjsonschema.compile(document, formats=_FORMATS)
    return compiled


class SchemaSet:
    """The schemas of one OCPP version and their validators, each compiled once, on first use.

    `validate` is the one check the gateway, the forms and the API ask for; a valid payload
    costs one compiled validator's pass (a Heartbeat, a microsecond).
    """

    def __init__(self, loader: Loader) -> None:
        self._loader = loader
        # Per set, not per module: two versions may name the same action differently.
        self._schema = functools.cache(self._load)
        self._fast = functools.cache(self._compile_fast)
        self._kind = functools.cache(self._compile_kind)
        self._full = functools.cache(self._compile_full)
        # Compiled validators of each array's item schema, by the item schema's identity
        # (the schemas are cached, so it stays the same object).
        self._item_checks: dict[int, Callable[[Any], Any]] = {}
        self._walker = _metered_draft4(self._item_checks)

    def schema(self, action: str, response: bool) -> dict[str, Any]:
        """The JSON schema of `action`'s request (CALL) or response (CALLRESULT).

        Raises KeyError for an action the set's version does not define.
        """
        return self._schema(action, response)

    def validate(self, action: str, payload: Any, response: bool) -> list[Violation]:
        """The violations of `action`'s request or response schema; empty when valid.

        At most `MAX_LISTED` (each kind found among them), followed by an `Omitted` for the
        rest; the cost is bounded whatever the payload (see the module's docstring).
        """
        try:
            self._fast(action, response)(payload)
        except fastjsonschema.JsonSchemaValueException as exc:
            first = _from_compiled(exc)
        else:
            return []
        walk = _walk(self._full(action, response), payload)
        if (not walk.complete or not walk.count) and first.code not in walk.examples:
            walk.examples[first.code] = first
            walk.found_elsewhere += 1
        if not walk.complete:
            self._find_strictest(action, response, payload, walk)
        shown = _representative(walk)
        omitted = _omitted(walk, shown)
        return [*shown, omitted] if omitted is not None else shown

    def kind_validator(self, action: str, response: bool, code: str) -> Callable[[Any], Any]:
        """A compiled validator of only the keywords that map to `code`: one fast pass says
        whether the payload has a violation of that kind anywhere, and where the first is."""
        return self._kind(action, response, code)

    def _load(self, action: str, response: bool) -> dict[str, Any]:
        return self._loader(action, response)

    def _compile_fast(self, action: str, response: bool) -> Callable[[Any], Any]:
        return _compile(self.schema(action, response))

    def _compile_kind(self, action: str, response: bool, code: str) -> Callable[[Any], Any]:
        return _compile(_keywords_of(self.schema(action, response), code))

    def _compile_full(self, action: str, response: bool) -> Any:
        root = self.schema(action, response)
        self._compile_item_checks(root)
        return self._walker(root, format_checker=_FORMAT_CHECKER)

    def _compile_item_checks(self, root: dict[str, Any]) -> None:
        definitions = root.get("definitions", {})

        def visit(node: Any) -> None:
            if not isinstance(node, dict):
                return
            items = node.get("items")
            if isinstance(items, dict):
                if id(items) not in self._item_checks:
                    self._item_checks[id(items)] = _compile({**items, "definitions": definitions})
                visit(items)
            for keyword in ("properties", "definitions"):
                for inner in node.get(keyword, {}).values():
                    visit(inner)

        visit(root)

    def _find_strictest(self, action: str, response: bool, payload: Any, walk: _Walk) -> None:
        """After an incomplete walk: find the most specific kind present, one pass per kind."""
        for code in _CODE_PRIORITY:
            if code in walk.examples:
                return
            try:
                self._kind(action, response, code)(payload)
            except fastjsonschema.JsonSchemaValueException as exc:
                walk.examples[code] = _from_compiled(exc)
                walk.found_elsewhere += 1
                return


def _keywords_of(node: Any, code: str) -> Any:
    """`node`, a schema, with every asserting keyword that does not map to `code` removed."""
    if not isinstance(node, dict):
        return node
    kept: dict[str, Any] = {}
    for keyword, value in node.items():
        if keyword in {"properties", "definitions", "patternProperties"}:
            kept[keyword] = {name: _keywords_of(inner, code) for name, inner in value.items()}
        elif keyword in {"items", "additionalItems", "additionalProperties"} and not isinstance(
            value, bool
        ):
            inner = value if isinstance(value, list) else [value]
            shaped = [_keywords_of(item, code) for item in inner]
            kept[keyword] = shaped if isinstance(value, list) else shaped[0]
        elif keyword in _STRUCTURE or _code_of(keyword) == code:
            kept[keyword] = value
    return kept


class _OutOfSteps(Exception):
    """The walk over an invalid payload used up its `MAX_STEPS`."""


# Steps left to the walk in progress: a list, so that each keyword can spend one in place.
_STEPS: contextvars.ContextVar[list[int]] = contextvars.ContextVar("ocpplab_schema_steps")


def _spend_step() -> None:
    steps = _STEPS.get()
    steps[0] -= 1
    if steps[0] < 0:
        raise _OutOfSteps


def _metered(keyword: Callable[..., Any]) -> Callable[..., Any]:
    def apply(validator: Any, value: Any, instance: Any, node: Any) -> Any:
        _spend_step()
        return keyword(validator, value, instance, node)

    return apply


_DRAFT4_ITEMS = jsonschema.Draft4Validator.VALIDATORS["items"]


def _metered_draft4(item_checks: dict[int, Callable[[Any], Any]]) -> Any:
    """Draft 4, as the OCPP schemas are, with every keyword spending a step of the walk's
    budget, and `items` descending only into the items that fail their compiled check.

    In a big payload nearly all items pass, and jsonschema walks ten times slower than the
    compiled check: so the walk costs about what a compiled pass costs, plus what its
    failures cost, and its steps are spent on those.
    """

    def items_keyword(validator: Any, items: Any, instance: Any, node: Any) -> Any:
        check = item_checks.get(id(items))
        if check is None or not validator.is_type(instance, "array"):
            yield from _DRAFT4_ITEMS(validator, items, instance, node)
            return
        for index, item in enumerate(instance):
            try:
                check(item)
            except fastjsonschema.JsonSchemaException:
                yield from validator.descend(item, items, path=index)

    return jsonschema.validators.extend(
        jsonschema.Draft4Validator,
        {
            **{
                name: _metered(keyword)
                for name, keyword in jsonschema.Draft4Validator.VALIDATORS.items()
            },
            "items": _metered(items_keyword),
        },
    )


def _code_of(keyword: str) -> str:
    return _CODE_BY_KEYWORD.get(keyword, "FormationViolation")


def _shortened(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def _json_path(path: Any) -> str:
    text = "$"
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return _shortened(text)


def _from_compiled(exc: fastjsonschema.JsonSchemaValueException) -> Violation:
    """The first violation the compiled validator met, in its words ("must be object")."""
    name = exc.name or "data"  # "data.meterValue[0].timestamp"
    message = exc.message.removeprefix(name).strip() or exc.message
    path = "$" + name.removeprefix("data")
    return Violation(_shortened(path), _shortened(message), _code_of(str(exc.rule)))


@dataclasses.dataclass(slots=True)
class _Walk:
    """What one bounded walk with jsonschema found."""

    listed: list[Violation] = dataclasses.field(default_factory=list)
    examples: dict[str, Violation] = dataclasses.field(default_factory=dict)
    kinds: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    count: int = 0
    complete: bool = True
    found_elsewhere: int = 0  # examples the compiled validators found beyond the walk


def _walk(validator: Any, payload: Any) -> _Walk:
    walk = _Walk()
    steps = _STEPS.set([MAX_STEPS])
    try:
        for error in validator.iter_errors(payload):
            if walk.count == MAX_COUNTED:
                walk.complete = False  # one more than counted: there are more
                break
            code = _code_of(str(error.validator))
            walk.count += 1
            walk.kinds[code] += 1
            if len(walk.listed) < MAX_LISTED or code not in walk.examples:
                violation = Violation(
                    _json_path(error.absolute_path), _shortened(error.message), code
                )
                if len(walk.listed) < MAX_LISTED:
                    walk.listed.append(violation)
                walk.examples.setdefault(code, violation)
    except _OutOfSteps:
        walk.complete = False
    finally:
        _STEPS.reset(steps)
    return walk


def _representative(walk: _Walk) -> list[Violation]:
    """The listed violations, with each kind found shown at least once."""
    shown = list(walk.listed)
    for code, example in walk.examples.items():
        if any(violation.code == code for violation in shown):
            continue
        if len(shown) >= MAX_LISTED:
            counts = collections.Counter(violation.code for violation in shown)
            del shown[max(i for i, item in enumerate(shown) if counts[item.code] > 1)]
        shown.append(example)
    return sorted(shown, key=lambda violation: violation.path)


def _omitted(walk: _Walk, shown: list[Violation]) -> Omitted | None:
    if walk.complete:
        left = walk.kinds - collections.Counter(violation.code for violation in shown)
        count = left.total()
        if count <= 0:
            return None
        kinds = left.most_common()
        message = f"and {count} more violations, not listed"
        if len(kinds) > 1:
            message += ": " + ", ".join(f"{number} {code}" for code, number in kinds)
        return Omitted("…", message, kinds[0][0], count)
    common = (walk.kinds.most_common(1) or [(shown[0].code, 0)])[0][0]
    count = max(0, walk.count + walk.found_elsewhere - len(shown))
    message = f"and more violations, not all counted: the check stopped after {walk.count}"
    return Omitted("…", message, common, count, counted=False)


def strictest_code(violations: list[Violation]) -> str:
    """The one OCPP-J error code a strict central system answers these violations with."""
    codes = {violation.code for violation in violations}
    for code in _CODE_PRIORITY:
        if code in codes:
            return code
    return "FormationViolation"


def violation_count(violations: list[Violation]) -> str:
    """How many violations a (bounded) list stands for, in words: "3", "at least 1000"."""
    listed = sum(1 for violation in violations if not isinstance(violation, Omitted))
    for violation in violations:
        if isinstance(violation, Omitted):
            total = listed + violation.count
            return str(total) if violation.counted else f"at least {total}"
    return str(listed)
