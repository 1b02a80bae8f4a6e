"""The official OCPP 1.6 JSON schemas, read straight from the files the `ocpp` package ships.

Tests judge ocpplab's payloads with these and `jsonschema` directly, never through
`ocpplab.core.schemas`, so that the adapter is not its own judge. The two formats the 1.6
schemas use are checked here too (jsonschema's own checker ignores both unless optional
packages are installed): "date-time" as RFC 3339 section 5.6 writes it, "uri" as RFC 3986
section 3 starts one, with a scheme.
"""

from __future__ import annotations

import datetime
import functools
import json
import re
import urllib.parse
from importlib import resources
from typing import Any

import jsonschema

# RFC 3339 section 5.6 "date-time": full-date "T" full-time, the offset required.
_RFC3339 = re.compile(
    r"\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)", flags=re.ASCII
)


def _is_date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True  # a format constrains strings only; "type" judges the rest
    if not _RFC3339.fullmatch(value):
        return False
    try:  # a real calendar date and time of day (leap seconds aside)
        datetime.datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _is_uri(value: object) -> bool:
    if not isinstance(value, str):
        return True
    return bool(urllib.parse.urlsplit(value).scheme) and not any(c.isspace() for c in value)


FORMATS = jsonschema.FormatChecker(formats=())
FORMATS.checks("date-time")(_is_date_time)
FORMATS.checks("uri")(_is_uri)


@functools.cache
def official_schema(action: str, *, response: bool) -> dict[str, Any]:
    """The `ocpp` package's copy of the official schema of `action`'s request or response."""
    name = f"{action}Response.json" if response else f"{action}.json"
    text = resources.files("ocpp.v16").joinpath("schemas", name).read_text()
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def official_violations(action: str, payload: Any, *, response: bool) -> list[str]:
    """Every way `payload` breaks the official schema, as `path: message` lines."""
    validator = jsonschema.Draft4Validator(
        official_schema(action, response=response), format_checker=FORMATS
    )
    return [
        f"{error.json_path}: {error.message}"
        for error in sorted(validator.iter_errors(payload), key=str)
    ]


def assert_official(action: str, payload: Any, *, response: bool) -> None:
    """Fail, naming every violation, unless `payload` is valid by the official schema."""
    what = f"{action}{'Response' if response else ''}"
    violations = official_violations(action, payload, response=response)
    assert violations == [], f"{what} breaks the official OCPP 1.6 schema: {payload!r}"
