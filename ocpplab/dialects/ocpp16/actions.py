"""OCPP 1.6's actions by direction and its CALLERROR codes: plain data, no imports."""

from __future__ import annotations

# OCPP-J 1.6, section 4.2.3 "CallError": the error codes a CALLERROR may carry. 1.6 spells
# "FormationViolation" and "OccurenceConstraintViolation" (sic); the `ocpp` package also
# offers later spellings, which a 1.6 charger may not know.
ERROR_CODES: tuple[str, ...] = (
    "NotImplemented",
    "NotSupported",
    "InternalError",
    "ProtocolError",
    "SecurityError",
    "FormationViolation",
    "PropertyConstraintViolation",
    "OccurenceConstraintViolation",
    "TypeConstraintViolation",
    "GenericError",
)

# OCPP 1.6 section 3.1 feature profiles; the security whitepaper's messages last.
CHARGER_ACTIONS: tuple[str, ...] = (
    "Authorize",
    "BootNotification",
    "DataTransfer",
    "DiagnosticsStatusNotification",
    "FirmwareStatusNotification",
    "Heartbeat",
    "MeterValues",
    "StartTransaction",
    "StatusNotification",
    "StopTransaction",
    "SecurityEventNotification",
    "SignCertificate",
    "LogStatusNotification",
    "SignedFirmwareStatusNotification",
)

CENTRAL_ACTIONS_BY_PROFILE: dict[str, tuple[str, ...]] = {
    "Core": (
        "ChangeAvailability",
        "ChangeConfiguration",
        "ClearCache",
        "DataTransfer",
        "GetConfiguration",
        "RemoteStartTransaction",
        "RemoteStopTransaction",
        "Reset",
        "UnlockConnector",
    ),
    "Firmware Management": ("GetDiagnostics", "UpdateFirmware"),
    "Local Auth List Management": ("GetLocalListVersion", "SendLocalList"),
    "Reservation": ("ReserveNow", "CancelReservation"),
    "Smart Charging": ("SetChargingProfile", "ClearChargingProfile", "GetCompositeSchedule"),
    "Remote Trigger": ("TriggerMessage",),
    "Security": (
        "ExtendedTriggerMessage",
        "CertificateSigned",
        "InstallCertificate",
        "DeleteCertificate",
        "GetInstalledCertificateIds",
        "GetLog",
        "SignedUpdateFirmware",
    ),
}

CENTRAL_ACTIONS: tuple[str, ...] = tuple(
    action for actions in CENTRAL_ACTIONS_BY_PROFILE.values() for action in actions
)
ALL_ACTIONS: frozenset[str] = frozenset(CHARGER_ACTIONS) | frozenset(CENTRAL_ACTIONS)
