"""Forms generated from an OCPP version's JSON schemas (`Dialect.schema`), and payloads
read back from them. Pure, and the same for every version.

A payload is edited either field by field (enums as selects, integers as numbers, nested
objects grouped, arrays as JSON) or as raw JSON for anything a form cannot express. Both
ways end in the same payload; a value that cannot even be read (text in a number field,
broken JSON) is reported next to its field, and schema violations are mapped to the field
they concern, so a person sees every problem where it is.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from typing import Any, Literal

from ocpplab.core.responder import NOW, TRANSACTION_ID, substitute
from ocpplab.core.schemas import Violation

Kind = Literal["text", "integer", "number", "boolean", "enum", "datetime", "json", "object"]

FIELD_PREFIX = "f."
PLACEHOLDERS = (NOW, TRANSACTION_ID)


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

    @property
    def name(self) -> str:
        return FIELD_PREFIX + self.path

    @property
    def dom_id(self) -> str:
        return "field-" + self.path.replace(".", "-")


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
) -> list[Field]:
    """The form's fields for `schema`, filled in from `payload`."""
    payload = payload if isinstance(payload, dict) else {}
    root = schema if root is None else root
    required = set(schema.get("required", ()))
    fields: list[Field] = []
    for key, raw_spec in schema.get("properties", {}).items():
        spec = _resolve(raw_spec, root)
        path = f"{prefix}{key}"
        kind = _kind(spec)
        field = Field(
            path=path,
            label=key,
            kind=kind,
            required=key in required,
            options=tuple(str(option) for option in spec.get("enum", ())),
            max_length=spec.get("maxLength"),
        )
        if kind == "object":
            field.children = build_fields(spec, payload.get(key), path + ".", root)
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
            return json.loads(text), None
        except ValueError as exc:
            return None, f"is not valid JSON: {exc}"
    return text, None


def read_form(
    fields: list[Field], form: Mapping[str, str], *, placeholders: bool = False
) -> tuple[dict[str, Any], bool]:
    """Fill `fields` from submitted `form` values; return the payload and whether all read.

    An empty optional field is left out of the payload. Fields keep what was typed, with
    errors attached, so the form can be shown again as the person left it.
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
            ok = False
        else:
            payload[field.label] = value
    return payload, ok


def _typed(fields: list[Field]) -> bool:
    """Whether anything was typed into these fields or the groups inside them."""
    return any(
        _typed(field.children) if field.kind == "object" else bool(field.value) for field in fields
    )


def attach_violations(fields: list[Field], violations: list[Violation]) -> list[str]:
    """Show each violation at its field (or nearest enclosing one); returns those left over."""
    by_path: dict[str, Field] = {}

    def index(items: list[Field]) -> None:
        for item in items:
            by_path[item.path] = item
            index(item.children)

    index(fields)
    unplaced: list[str] = []
    for violation in violations:
        path = _dotted(violation.path)
        if violation.message.endswith("is a required property"):
            missing = violation.message.split("'")[1] if "'" in violation.message else ""
            path = f"{path}.{missing}" if path else missing
        target = _nearest(by_path, path)
        message = f"{violation.message} ({violation.code})"
        if target is None:
            unplaced.append(f"{violation.path}: {message}")
        else:
            target.errors.append(message)
    return unplaced


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
