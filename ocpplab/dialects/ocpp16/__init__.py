"""OCPP 1.6 (with the 1.6 security whitepaper's messages) as a `Dialect`: `OCPP16`.

Everything the rest of ocpplab knows of 1.6 comes from here: its subprotocol (OCPP-J 1.6
section 3.1.2), its actions by direction and feature profile (OCPP 1.6 section 3.1), its
CALLERROR codes (OCPP-J 1.6 section 4.2.3), its schemas, default answers, example requests,
presets and the state reducer.
"""

from __future__ import annotations

from ocpplab.core.dialect import Dialect
from ocpplab.dialects.ocpp16.actions import (
    CENTRAL_ACTIONS_BY_PROFILE,
    CHARGER_ACTIONS,
    ERROR_CODES,
)
from ocpplab.dialects.ocpp16.answers import TRANSACTION_ACTION, default_answer
from ocpplab.dialects.ocpp16.checks import CATALOGUE
from ocpplab.dialects.ocpp16.descriptions import field_help
from ocpplab.dialects.ocpp16.examples import example_request
from ocpplab.dialects.ocpp16.presets import PRESETS
from ocpplab.dialects.ocpp16.schemas import SCHEMAS
from ocpplab.dialects.ocpp16.state import ChargerState

OCPP16 = Dialect(
    name="OCPP 1.6",
    subprotocol="ocpp1.6",
    charger_actions=CHARGER_ACTIONS,
    central_actions_by_profile=CENTRAL_ACTIONS_BY_PROFILE,
    error_codes=ERROR_CODES,
    validate=SCHEMAS.validate,
    default_answer=default_answer,
    example_request=example_request,
    schema=SCHEMAS.schema,
    new_state=ChargerState,
    transaction_action=TRANSACTION_ACTION,
    presets=PRESETS,
    state_template="dialects/ocpp16_state.html",
    field_help=field_help,
    checks=CATALOGUE,
)

__all__ = ["OCPP16"]
