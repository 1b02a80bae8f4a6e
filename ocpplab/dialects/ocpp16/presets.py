"""Common OCPP 1.6 experiments the Configure panel saves with one click.

A preset's rule may be an answer sequence (`core.responder.Sequence`): the retry
experiments, where how a charger behaves after a refusal is what is being tested.
"""

from __future__ import annotations

from typing import Any

from ocpplab.core.dialect import Preset


def _custom(payload: dict[str, Any]) -> dict[str, Any]:
    return {"mode": "custom", "payload": payload}


def _id_tag(status: str) -> dict[str, Any]:
    """An answer whose IdTagInfo has `status` (OCPP 1.6 section 7.2 AuthorizationStatus)."""
    return _custom({"idTagInfo": {"status": status}})


def _boot(status: str, interval: int) -> dict[str, Any]:
    """A BootNotification answer (OCPP 1.6 section 4.2): with Rejected, the charger retries
    after `interval` seconds."""
    return _custom({"status": status, "currentTime": "{now}", "interval": interval})


def _sequence(*steps: tuple[dict[str, Any], int], repeat: bool = False) -> dict[str, Any]:
    return {"sequence": [{**rule, "count": count} for rule, count in steps], "repeat": repeat}


_INTERNAL_ERROR = {
    "mode": "error",
    "error": {"code": "InternalError", "description": "ocpplab test"},
}

PRESETS: tuple[Preset, ...] = (
    Preset(
        "pending",
        "Pending, interval 15 s",
        _custom({"status": "Pending", "currentTime": "{now}", "interval": 15}),
        "BootNotification",
    ),
    Preset(
        "rejected",
        "Rejected, interval 60 s",
        _custom({"status": "Rejected", "currentTime": "{now}", "interval": 60}),
        "BootNotification",
    ),
    Preset(
        "rejected-twice",
        "Rejected twice, then Accepted",
        _sequence((_boot("Rejected", 10), 2), (_boot("Accepted", 60), 1)),
        "BootNotification",
    ),
    Preset(
        "ignore-first",
        "Ignore the first, then answer",
        _sequence(({"mode": "ignore"}, 1), ({"mode": "default"}, 1)),
        "BootNotification",
    ),
    Preset("invalid", "Invalid", _id_tag("Invalid"), "Authorize"),
    Preset(
        "invalid-once",
        "Invalid once, then Accepted",
        _sequence((_id_tag("Invalid"), 1), (_id_tag("Accepted"), 1)),
        "Authorize",
    ),
    Preset("blocked", "Blocked", _id_tag("Blocked"), "Authorize"),
    Preset("expired", "Expired", _id_tag("Expired"), "Authorize"),
    Preset(
        "invalid",
        "Reject the idTag (Invalid)",
        _custom({"idTagInfo": {"status": "Invalid"}, "transactionId": "{transactionId}"}),
        "StartTransaction",
    ),
    Preset(
        "fixed-id",
        "transactionId 12345",
        _custom({"idTagInfo": {"status": "Accepted"}, "transactionId": 12345}),
        "StartTransaction",
    ),
    Preset("invalid", "Reject the idTag (Invalid)", _id_tag("Invalid"), "StopTransaction"),
    Preset("rejected", "Rejected", _custom({"status": "Rejected"}), "DataTransfer"),
    Preset(
        "unknown-vendor", "UnknownVendorId", _custom({"status": "UnknownVendorId"}), "DataTransfer"
    ),
    # Offered for every action, after the action's own.
    Preset("ignore", "Don't answer", {"mode": "ignore"}),
    Preset("manual", "Hold for me", {"mode": "manual"}),
    Preset("error", "CALLERROR InternalError", _INTERNAL_ERROR),
    Preset(
        "answer-answer-error",
        "Answer, answer, CALLERROR — repeat",
        _sequence(({"mode": "default"}, 2), (_INTERNAL_ERROR, 1), repeat=True),
    ),
)
