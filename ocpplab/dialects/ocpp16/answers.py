"""The built-in valid answer to each charger-initiated OCPP 1.6 action (OCPP 1.6 section 4)."""

from __future__ import annotations

from typing import Any

from ocpplab.core.dialect import AnswerContext
from ocpplab.core.responder import format_time

# The charger action whose answer hands out a transaction id (OCPP 1.6 section 4.8).
TRANSACTION_ACTION = "StartTransaction"


def default_answer(action: str, context: AnswerContext) -> dict[str, Any]:
    """The answer a permissive central system gives: everything accepted, the time now."""
    # Built per call, only the one asked for: this runs for every charger call.
    if action == "Heartbeat":
        return {"currentTime": format_time(context.now)}
    if action == "BootNotification":
        return {"status": "Accepted", "currentTime": format_time(context.now), "interval": 60}
    if action in {"Authorize", "StopTransaction"}:
        return {"idTagInfo": {"status": "Accepted"}}
    if action == TRANSACTION_ACTION:
        return {"idTagInfo": {"status": "Accepted"}, "transactionId": context.transaction_id}
    if action in {"DataTransfer", "SignCertificate"}:
        return {"status": "Accepted"}
    return {}
