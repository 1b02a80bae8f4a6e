"""Forms generated from an OCPP version's JSON schemas (`Dialect.schema`), and payloads
read back from them. Pure, and the same for every version.

A payload is edited either field by field (enums as selects, integers as numbers, nested
objects grouped, arrays as JSON) or as raw JSON for anything a form cannot express. Both
ways end in the same payload. Every problem of a form is found in one round: a value that
cannot even be read (text in a number field, broken JSON) is marked at its field and left
out of the payload, the rest is checked against the schema at once, and each violation is
mapped to the field it concerns (`attach_violations`; none twice for a field that could
not be read). templates/_fields.html shows each next to its field and lists them all in a
summary at the top, with links to the fields.

Help under a field is the schema's own `description`, else the dialect's line for it
(`FieldHelp`; the official OCPP 1.6 schemas carry no descriptions, so 1.6 has a table of
its own, `dialects/ocpp16/descriptions.py`).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Mapping
from typing import Any, Literal

from ocpplab.core import frames
from ocpplab.core.dialect import Dialect
from ocpplab.core.responder import NOW, TRANSACTION_ID, substitute
from ocpplab.core.schemas import Violation

Kind = Literal["text", "integer", "number", "boolean", "enum", "datetime", "json", "object"]

FIELD_PREFIX = "f."
PLACEHOLDERS = (NOW, TRANSACTION_ID)

# A field's dotted path in the form -> one line of help, "" when there is none.
FieldHelp = Callable[[str], str]


@dataclasses.dataclass
class Field:
    """One input of a generated form (or a group of them, for a nested object)."""

    path: str
    label: str
    kind: Kind
    required: bool = False
    options: tuple[str, ...] = ()
    value: str = ""
    max_length: int | None = None
    children: list[Field] = dataclasses.field(default_factory=list)
    errors: list[str] = dataclasses.field(default_factory=list)
    help: str = ""
    unreadable: bool = False  # what was typed is not a value of its kind (see `read_form`)

    @property
    def name(self) -> str:
        return FIELD_PREFIX + self.path

    @property
    def dom_id(self) -> str:
        return "field-" + self.path.replace(".", "-")

    @property
    def problem_count(self) -> int:
        """The problems of this field and of the fields inside it."""
        return len(self.errors) + sum(child.problem_count for child in self.children)

    @property
    def filled(self) -> bool:
        """Whether a value is in this field, or in any field of this group."""
        return _typed(self.children) if self.kind == "object" else bool(self.value)


@dataclasses.dataclass(frozen=True)
class Problem:
    """One problem for the summary at the top of a form, and the input it links to.

    `target` is the input's id after the form's id prefix (`field-connectorId`, `delay`).
    """

    label: str
    message: str
    target: str


def problems_of(fields: list[Field]) -> list[Problem]:
    """Every problem of `fields`, in the order the form shows them."""
    found: list[Problem] = []
    for field in fields:
        found += [Problem(field.path, error, field.dom_id) for error in field.errors]
        found += problems_of(field.children)
    return found


def problem_count(fields: list[Field]) -> int:
    return sum(field.problem_count for field in fields)


def help_for(dialect: Dialect, action: str, response: bool) -> FieldHelp:
    """The dialect's help for the fields of `action`'s request (or answer)
    (`Dialect.field_help`)."""
    lookup = dialect.field_help
    return lambda path: lookup(action, response, path)


def _no_help(path: str) -> str:
    return ""


def _kind(spec: Mapping[str, Any]) -> Kind:
    kind = spec.get("type")
    if "enum" in spec:
        return "enum"
    if kind == "object":
        return "object" if spec.get("properties") else "json"
    if kind == "integer":
        return "integer"
    if kind == "number":
        return "number"
    if kind == "boolean":
        return "boolean"
    if kind == "string":
        return "datetime" if spec.get("format") == "date-time" else "text"
    return "json"


def _as_text(value: Any, kind: Kind) -> str:
    if value is None:
        return ""
    if kind == "json":
        return json.dumps(value, indent=2, ensure_ascii=False)
    if kind == "boolean" and isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _resolve(spec: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    """Follow a local `$ref` ("#/definitions/X"): the security whitepaper's schemas use them."""
    ref = spec.get("$ref")
    if not isinstance(ref, str) or not ref.startswith("#/definitions/"):
        return spec
    target: Mapping[str, Any] = root.get("definitions", {}).get(ref.rsplit("/", 1)[1], {})
    return {**target, **{key: value for key, value in spec.items() if key != "$ref"}}


def build_fields(
    schema: Mapping[str, Any],
    payload: Any,
    prefix: str = "",
    root: Mapping[str, Any] | None = None,
    *,
    describe: FieldHelp = _no_help,
) -> list[Field]:
    """The form's fields for `schema`, filled in from `payload`, with help for each."""
    payload = payload if isinstance(payload, dict) else {}
    root = schema if root is None else root
    required = set(schema.get("required", ()))
    fields: list[Field] = []
    for key, raw_spec in schema.get("properties", {}).items():
        spec = _resolve(raw_spec, root)
        path = f"{prefix}{key}"
        kind = _kind(spec)
        description = spec.get("description")
        field = Field(
            path=path,
            label=key,
            kind=kind,
            required=key in required,
            options=tuple(str(option) for option in spec.get("enum", ())),
            max_length=spec.get("maxLength"),
            help=description if isinstance(description, str) and description else describe(path),
        )
        if kind == "object":
            field.children = build_fields(
                spec, payload.get(key), path + ".", root, describe=describe
            )
        else:
            field.value = _as_text(payload.get(key), kind)
        fields.append(field)
    return fields


def _read(field: Field, text: str, *, placeholders: bool) -> tuple[Any, str | None]:
    """The JSON value typed into `field`, or why it cannot be read."""
    if placeholders and text in PLACEHOLDERS:
        return text, None
    if field.kind == "integer":
        try:
            return int(text), None
        except ValueError:
            return None, "must be a whole number"
    if field.kind == "number":
        try:
            number = float(text)
        except ValueError:
            return None, "must be a number"
        if not math.isfinite(number):
            return None, "must be a finite number"
        return (int(number) if number.is_integer() and "." not in text else number), None
    if field.kind == "boolean":
        if text not in {"true", "false"}:
            return None, "must be true or false"
        return text == "true", None
    if field.kind == "json":
        try:
            return frames.loads(text), None
        except frames.TooDeep:
            return None, f"nests deeper than {frames.MAX_DEPTH} levels"
        except ValueError as exc:
            return None, f"is not valid JSON: {exc}"
    return text, None


def read_form(
    fields: list[Field], form: Mapping[str, str], *, placeholders: bool = False
) -> tuple[dict[str, Any], bool]:
    """Fill `fields` from submitted `form` values; return the payload and whether all read.

    An empty field is left out of the payload, and so is one whose value cannot be read
    (marked `unreadable`, its error attached): the rest can still be checked against the
    schema in the same round. Fields keep what was typed, so the form can be shown again
    as the person left it.
    """
    payload: dict[str, Any] = {}
    ok = True
    for field in fields:
        if field.kind == "object":
            child, child_ok = read_form(field.children, form, placeholders=placeholders)
            ok = ok and child_ok
            # An optional group left blank is left out, even when it holds required groups.
            if _typed(field.children) or field.required:
                payload[field.label] = child
            continue
        text = form.get(field.name, "").strip()
        field.value = text
        if not text:
            continue  # left out; the schema says whether that is allowed
        value, error = _read(field, text, placeholders=placeholders)
        if error:
            field.errors.append(error)
            field.unreadable, ok = True, False
        else:
            payload[field.label] = value
    return payload, ok


def _typed(fields: list[Field]) -> bool:
    """Whether anything was typed into these fields or the groups inside them."""
    return any(
        _typed(field.children) if field.kind == "object" else bool(field.value) for field in fields
    )


def attach_violations(fields: list[Field], violations: list[Violation]) -> list[str]:
    """Show each violation at its field (or nearest enclosing one); returns those left over.

    A field whose value could not be read already says so; the violation its absence
    causes (required, most often) is not added to it (see `new_violations`).
    """
    by_path = _index(fields)
    unplaced: list[str] = []
    for violation in new_violations(fields, violations):
        path = _field_path(violation)
        target = _nearest(by_path, path)
        message = f"{violation.message} ({violation.code})"
        if target is None:
            unplaced.append(f"{violation.path}: {message}")
        elif target.path == path and violation.message.endswith("is a required property"):
            target.errors.append(f"required, but left empty ({violation.code})")
        else:
            target.errors.append(message)
    return unplaced


def new_violations(fields: list[Field], violations: list[Violation]) -> list[Violation]:
    """The violations that say something new: not those at a field that could not be read
    (its value was left out of the payload, so the schema misses it)."""
    by_path = _index(fields)
    kept = []
    for violation in violations:
        target = _nearest(by_path, _field_path(violation))
        if target is None or not target.unreadable:
            kept.append(violation)
    return kept


def _index(fields: list[Field]) -> dict[str, Field]:
    by_path: dict[str, Field] = {}

    def index(items: list[Field]) -> None:
        for item in items:
            by_path[item.path] = item
            index(item.children)

    index(fields)
    return by_path


def _field_path(violation: Violation) -> str:
    """The dotted path of the field a violation concerns (for "required", the missing one)."""
    path = _dotted(violation.path)
    if violation.message.endswith("is a required property"):
        missing = violation.message.split("'")[1] if "'" in violation.message else ""
        path = f"{path}.{missing}" if path else missing
    return path


def _dotted(json_path: str) -> str:
    """`$.a.b[0].c` -> `a.b` (arrays are edited as one JSON field)."""
    path = json_path.removeprefix("$").lstrip(".")
    return path.split("[", 1)[0]


def _nearest(by_path: dict[str, Field], path: str) -> Field | None:
    while path:
        if path in by_path:
            return by_path[path]
        path = path.rpartition(".")[0]
    return None


def fill_for_validation(payload: Any) -> Any:
    """Stand-ins for placeholders, so that `{now}` counts as a valid date-time."""
    return substitute(payload, {NOW: "2026-01-01T00:00:00.000Z", TRANSACTION_ID: 1})[0]
