"""A sensible, valid example request for every central-system OCPP 1.6 action.

The operation forms open pre-filled with these, so that Send works at once and a person
edits from something that is known to be right. Timestamps are relative to `now`.
"""

from __future__ import annotations

import datetime
from typing import Any

from ocpplab.core.responder import format_time

CERTIFICATE = (
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBszCCAVmgAwIBAgIUb2NwcGxhYiBleGFtcGxlIGNlcnQwCgYIKoZIzj0EAwIw\n"
    "-----END CERTIFICATE-----"
)
HASH = "5f8a7b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a"


def example_request(action: str, now: datetime.datetime) -> dict[str, Any]:
    """The example payload for `action` (a central-system action), timed around `now`."""
    in_an_hour = format_time(now + datetime.timedelta(hours=1))
    current = format_time(now)
    examples: dict[str, dict[str, Any]] = {
        "ChangeAvailability": {"connectorId": 0, "type": "Operative"},
        "ChangeConfiguration": {"key": "HeartbeatInterval", "value": "60"},
        "ClearCache": {},
        "DataTransfer": {"vendorId": "ocpplab", "messageId": "Ping", "data": "hello"},
        "GetConfiguration": {},
        "RemoteStartTransaction": {"connectorId": 1, "idTag": "OCPPLAB1"},
        "RemoteStopTransaction": {"transactionId": 1},
        "Reset": {"type": "Soft"},
        "UnlockConnector": {"connectorId": 1},
        "GetDiagnostics": {
            "location": "ftp://diagnostics.example.com/upload/",
            "retries": 1,
            "retryInterval": 60,
        },
        "UpdateFirmware": {
            "location": "https://firmware.example.com/firmware.bin",
            "retrieveDate": current,
            "retries": 1,
        },
        "GetLocalListVersion": {},
        "SendLocalList": {
            "listVersion": 1,
            "updateType": "Full",
            "localAuthorizationList": [
                {"idTag": "OCPPLAB1", "idTagInfo": {"status": "Accepted"}},
                {"idTag": "BLOCKED1", "idTagInfo": {"status": "Blocked"}},
            ],
        },
        "ReserveNow": {
            "connectorId": 1,
            "expiryDate": in_an_hour,
            "idTag": "OCPPLAB1",
            "reservationId": 1,
        },
        "CancelReservation": {"reservationId": 1},
        "SetChargingProfile": {
            "connectorId": 1,
            "csChargingProfiles": {
                "chargingProfileId": 1,
                "stackLevel": 0,
                "chargingProfilePurpose": "TxDefaultProfile",
                "chargingProfileKind": "Absolute",
                "chargingSchedule": {
                    "chargingRateUnit": "A",
                    "startSchedule": current,
                    "duration": 3600,
                    "chargingSchedulePeriod": [
                        {"startPeriod": 0, "limit": 16.0},
                        {"startPeriod": 1800, "limit": 10.0},
                    ],
                },
            },
        },
        "ClearChargingProfile": {"connectorId": 1, "chargingProfilePurpose": "TxDefaultProfile"},
        "GetCompositeSchedule": {"connectorId": 1, "duration": 3600, "chargingRateUnit": "A"},
        "TriggerMessage": {"requestedMessage": "StatusNotification", "connectorId": 1},
        "ExtendedTriggerMessage": {"requestedMessage": "StatusNotification", "connectorId": 1},
        "CertificateSigned": {"certificateChain": CERTIFICATE},
        "InstallCertificate": {
            "certificateType": "CentralSystemRootCertificate",
            "certificate": CERTIFICATE,
        },
        "DeleteCertificate": {
            "certificateHashData": {
                "hashAlgorithm": "SHA256",
                "issuerNameHash": HASH,
                "issuerKeyHash": HASH[::-1],
                "serialNumber": "01",
            }
        },
        "GetInstalledCertificateIds": {"certificateType": "CentralSystemRootCertificate"},
        "GetLog": {
            "logType": "DiagnosticsLog",
            "requestId": 1,
            "log": {"remoteLocation": "https://logs.example.com/upload"},
        },
        "SignedUpdateFirmware": {
            "requestId": 1,
            "firmware": {
                "location": "https://firmware.example.com/firmware.bin",
                "retrieveDateTime": current,
                "signingCertificate": CERTIFICATE,
                "signature": "c2lnbmF0dXJl",
            },
        },
    }
    return examples[action]
