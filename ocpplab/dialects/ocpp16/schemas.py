"""The official OCPP 1.6 (and 1.6 security whitepaper) JSON schemas, as the `ocpp` package
ships them: the one place that reads them."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from ocpplab.core.schemas import SchemaSet
from ocpplab.dialects.ocpp16.actions import ALL_ACTIONS


def load(action: str, response: bool) -> dict[str, Any]:
    """The schema of `action`'s request (CALL) or response (CALLRESULT); KeyError if no 1.6
    action has that name."""
    if action not in ALL_ACTIONS:
        raise KeyError(action)
    name = f"{action}Response.json" if response else f"{action}.json"
    text = resources.files("ocpp.v16").joinpath("schemas", name).read_text("utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


SCHEMAS = SchemaSet(load)
