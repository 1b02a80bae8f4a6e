"""Jinja2 set-up and fragments: a live update is a named block of the page that shows it.

`render_block` renders one block of a template (as jinja2-fragments does), so a page and the
fragments pushed to it over its websocket come from the same source and never drift apart.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import jinja2
from starlette.templating import Jinja2Templates

from ocpplab import schemas

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES_DIR = ROOT / "templates"
STATIC_DIR = ROOT / "static"


def pretty_json(raw: Any) -> Any:
    """Indent a frame's JSON for people; text that is not JSON is shown as it came."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            return raw
    return json.dumps(raw, indent=2, ensure_ascii=False)


def frame_body(raw: str) -> Any:
    """What a person reads first in a frame: its payload, pretty; the rest is in the header.

    A CALLERROR shows its code, description and details; text that is not an OCPP-J frame is
    shown as it came.
    """
    try:
        value = json.loads(raw)
    except ValueError:
        return raw
    if not isinstance(value, list) or len(value) < 3:
        return pretty_json(value)
    if value[0] == 2 and len(value) == 4:
        return pretty_json(value[3])
    if value[0] == 3 and len(value) == 3:
        return pretty_json(value[2])
    if value[0] == 4 and len(value) >= 4:
        keys = ("errorCode", "errorDescription", "errorDetails")
        return pretty_json(dict(zip(keys, value[2:], strict=False)))
    return pretty_json(value)


def clock_time(iso: str | None) -> str:
    """`2026-11-26T14:03:05.123Z` -> `14:03:05.123`: enough for a live log."""
    if not iso or "T" not in iso:
        return iso or ""
    return iso.split("T", 1)[1].rstrip("Z")


def dom_id(text: str) -> str:
    """A stable HTML id for any text (unique ids may hold any character)."""
    return "h" + hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:16]


@jinja2.pass_context
def url_for(context: Any, name: str, /, **params: Any) -> str:
    """A root-relative URL, right behind any proxy (pages and live fragments alike)."""
    connection = context.get("request") or context["connection"]
    path: str = connection.url_for(name, **params).path
    return path


def make_templates() -> Jinja2Templates:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.globals["url_for"] = url_for
    environment.filters["pretty_json"] = pretty_json
    environment.filters["frame_body"] = frame_body
    environment.filters["clock_time"] = clock_time
    environment.filters["dom_id"] = dom_id
    environment.globals["CHARGER_ACTIONS"] = schemas.CHARGER_ACTIONS
    environment.globals["CENTRAL_ACTIONS_BY_PROFILE"] = schemas.CENTRAL_ACTIONS_BY_PROFILE
    environment.globals["ERROR_CODES"] = schemas.ERROR_CODES
    return Jinja2Templates(env=environment)


def render_block(
    templates: Jinja2Templates, template_name: str, block_name: str, **context: Any
) -> str:
    """Render one `{% block %}` of a template with `context`."""
    template = templates.env.get_template(template_name)
    try:
        block = template.blocks[block_name]
    except KeyError:
        raise KeyError(f"{template_name} has no block {block_name!r}") from None
    return "".join(block(template.new_context(context)))
