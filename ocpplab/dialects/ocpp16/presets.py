"""Common OCPP 1.6 experiments the Configure panel saves with one click."""

from __future__ import annotations

from typing import Any

from ocpplab.core.dialect import Preset


def _custom(payload: dict[str, Any]) -> dict[str, Any]:
    return {"mode": "custom", "payload": payload}


def _id_tag(status: str) -> dict[str, Any]:
    """An answer whose IdTagInfo has `status` (OCPP 1.6 section 7.2 AuthorizationStatus)."""
    return _custom({"idTagInfo": {"status": status}})


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
    Preset("invalid", "Invalid", _id_tag("Invalid"), "Authorize"),
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
    Preset(
        "error",
        "CALLERROR InternalError",
        {"mode": "error", "error": {"code": "InternalError", "description": "ocpplab test"}},
    ),
)
