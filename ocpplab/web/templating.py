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
from markupsafe import Markup
from starlette.templating import Jinja2Templates

from ocpplab.core.dialect import Dialect
from ocpplab.core.frames import encodable, loads
from ocpplab.dialects.ocpp16 import OCPP16
from ocpplab.web import meter_chart

PACKAGE_DIR = Path(__file__).resolve().parent.parent  # ocpplab/


def shipped_dir(name: str) -> Path:
    """Where ocpplab's `templates/` or `static/` folder is, installed from a wheel or not.

    A wheel carries them inside the package, as `ocpplab/templates` and `ocpplab/static`
    (pyproject.toml maps the repo's top-level folders there). A checkout, and so an editable
    install, has them beside the package, and edits to them show without reinstalling.
    importlib.resources cannot find them in an editable install: setuptools' editable finder
    does not resolve a data-only subpackage of a regular package.
    """
    packaged = PACKAGE_DIR / name
    if packaged.is_dir():
        return packaged
    checkout = PACKAGE_DIR.parent
    if (checkout / "pyproject.toml").is_file() and (checkout / name).is_dir():
        return checkout / name
    raise FileNotFoundError(
        f"ocpplab's {name}/ folder is missing (looked in {PACKAGE_DIR} and {checkout}): "
        "reinstall ocpplab from its wheel or checkout"
    )


TEMPLATES_DIR = shipped_dir("templates")
STATIC_DIR = shipped_dir("static")


def pretty_json(raw: Any) -> Any:
    """Indent a frame's JSON for people; text that is not JSON is shown as it came.

    Either way lone surrogates are shown as their escapes (`encodable`): the page could not
    be sent with them. JSON nested too deep to read (`core.frames.MAX_DEPTH`) is text too.
    """
    if isinstance(raw, str):
        try:
            raw = loads(raw)
        except ValueError:
            return encodable(raw)
    try:
        return encodable(json.dumps(raw, indent=2, ensure_ascii=False))
    except RecursionError:
        return "(nested too deep to show)"


def frame_body(raw: str) -> Any:
    """What a person reads first in a frame: its payload, pretty; the rest is in the header.

    A CALLERROR shows its code, description and details; text that is not an OCPP-J frame is
    shown as it came.
    """
    try:
        value = loads(raw)
    except ValueError:
        return encodable(raw)
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
    """A stable HTML id for any text (unique ids may hold any character, lone surrogates too)."""
    digest = hashlib.sha1(text.encode(errors="surrogatepass"), usedforsecurity=False)
    return "h" + digest.hexdigest()[:16]


def printable(value: Any) -> Any:
    """What every `{{ … }}` of a page and fragment prints: lone surrogates shown escaped.

    Text a charger sends (a vendor, a unique id, a meter value) may hold lone surrogates,
    and a page with one cannot be encoded to be sent: the page would fail with a 500, a
    live fragment would not arrive. Applied here, no template can forget it.
    """
    if isinstance(value, str) and not value.isascii():
        escaped = encodable(value)
        return Markup(escaped) if isinstance(value, Markup) else escaped
    return value


@jinja2.pass_context
def url_for(context: Any, name: str, /, **params: Any) -> str:
    """A root-relative URL, right behind any proxy (pages and live fragments alike)."""
    connection = context.get("request") or context["connection"]
    path: str = connection.url_for(name, **params).path
    return path


def make_templates(dialect: Dialect = OCPP16) -> Jinja2Templates:
    """The page templates, with `dialect`'s actions and error codes for the forms to list.

    `dialect` is the one OCPP version the pages show for now; with a second one, a page
    takes its charger's dialect from its render context instead.
    """
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=printable,
    )
    environment.globals["url_for"] = url_for
    environment.filters["pretty_json"] = pretty_json
    environment.filters["frame_body"] = frame_body
    environment.filters["clock_time"] = clock_time
    environment.filters["dom_id"] = dom_id
    environment.globals["dialect"] = dialect
    environment.globals["CHARGER_ACTIONS"] = dialect.charger_actions
    environment.globals["CENTRAL_ACTIONS_BY_PROFILE"] = dialect.central_actions_by_profile
    environment.globals["ERROR_CODES"] = dialect.error_codes
    environment.globals["meter_chart"] = meter_chart.svg
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
