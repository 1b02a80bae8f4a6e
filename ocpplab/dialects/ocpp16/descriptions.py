"""One line of help for the fields people meet most, after the OCPP 1.6 specification.

The official 1.6 JSON schemas carry no descriptions, so the generated forms would show bare
names. These lines say, in our own words, what the specification's message tables (OCPP 1.6
chapter 6, "Messages", and chapter 7, "Types"; the security whitepaper for its messages)
say a field means. The table is bounded on purpose: a line each, for the fields that a
person sending calls or configuring answers actually meets; a field without a line simply
has no help (tests/test_forms.py checks that every line names a real field).

`field_help(action, response, path)` looks a field up by its dotted path in the form
(`csChargingProfiles.chargingSchedule.chargingRateUnit`): first among the lines for that
message, then among the lines that mean the same in every message, each time from the
whole path down to its last name, so a type used in many messages (ChargingProfile,
IdTagInfo) needs its lines once.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

MAX_HELP_LENGTH = 160  # one line under a field

# What a field means in every message it appears in (OCPP 1.6 chapters 6 and 7).
COMMON: Mapping[str, str] = {
    "connectorId": "The connector, numbered from 1 on the charger.",
    "idTag": "The identifier of the card or token (up to 20 characters, IdToken).",
    "parentIdTag": "The group this idTag belongs to; tags with the same parent may stop "
    "each other's transactions.",
    "transactionId": "The id the central system gave the transaction in its "
    "StartTransaction answer.",
    "reservationId": "The id of the reservation, chosen by the central system.",
    "expiryDate": "When the reservation ends, if the idTag has not started charging by then.",
    "location": "The URI the charger fetches from or uploads to (ftp://, http:// or https://).",
    "retries": "How often the charger tries again before giving up; left out, the charger decides.",
    "retryInterval": "Seconds to wait between tries; left out, the charger decides.",
    "startTime": "Only diagnostics from this time on; left out, from the oldest there is.",
    "stopTime": "Only diagnostics up to this time; left out, up to now.",
    "retrieveDate": "From when the charger should download the firmware.",
    "requestedMessage": "The message the charger is asked to send now.",
    "vendorId": "Who defines this data: a vendor id, such as a reversed DNS name.",
    "messageId": "Which of the vendor's messages this is, when a vendor has several.",
    "data": "Free text, its meaning agreed between the vendor and the central system.",
    "listVersion": "The version number the local list has after this update.",
    "updateType": "Full replaces the whole list; Differential adds, changes or removes "
    "the entries sent.",
    "localAuthorizationList": "JSON list of {idTag, idTagInfo}; in a Differential update "
    "an entry without idTagInfo is removed.",
    "key": "The name of a configuration key, such as HeartbeatInterval.",
    "value": 'The new value, always as text ("60", "true").',
    "currentTime": "The central system's clock; the charger may set its own to it. "
    "{now} is the time of the answer.",
    # ChargingProfile (OCPP 1.6 section 7.8) and ChargingSchedule (7.13)
    "chargingProfileId": "The profile's id; a new profile with the same id replaces the old one.",
    "stackLevel": "Priority among profiles of the same purpose: the highest level wins, "
    "0 is the lowest.",
    "chargingProfilePurpose": "ChargePointMaxProfile limits the whole charger, "
    "TxDefaultProfile new transactions, TxProfile one transaction.",
    "chargingProfileKind": "Absolute starts at startSchedule, Recurring repeats daily or "
    "weekly, Relative starts with the transaction.",
    "recurrencyKind": "For a Recurring profile: whether the schedule repeats Daily or Weekly.",
    "validFrom": "From when the profile applies; left out, at once.",
    "validTo": "Until when the profile applies; left out, until it is replaced.",
    "chargingProfile.transactionId": "For a TxProfile only: the transaction it applies to.",
    "csChargingProfiles.transactionId": "For a TxProfile only: the transaction it applies to.",
    "chargingSchedule": "The limits over time: a unit and the periods they hold for.",
    "duration": "Seconds the schedule lasts; left out, the last period lasts until "
    "the transaction ends.",
    "startSchedule": "When the schedule starts (Absolute and Recurring profiles).",
    "chargingRateUnit": "A for current per phase in ampere, W for power in watt.",
    "chargingSchedulePeriod": "JSON list of {startPeriod (seconds from the start), "
    "limit, numberPhases?}, in order.",
    "minChargingRate": "The lowest rate the vehicle charges at efficiently, in the "
    "schedule's unit.",
    # IdTagInfo (OCPP 1.6 section 7.28)
    "idTagInfo": "Whether the idTag may charge, and until when.",
    "idTagInfo.status": "Accepted lets the idTag charge; Blocked, Expired, Invalid and "
    "ConcurrentTx refuse it.",
    "idTagInfo.expiryDate": "Until when the charger may keep this idTag in its "
    "authorization cache.",
    "idTagInfo.parentIdTag": "The group the idTag belongs to, if any.",
}

# What a field means in one message: (action, response) -> path -> line.
BY_MESSAGE: Mapping[tuple[str, bool], Mapping[str, str]] = {
    ("ChangeAvailability", False): {
        "connectorId": "The connector to change; 0 changes the whole charger and all "
        "its connectors.",
        "type": "Operative allows charging; Inoperative stops it (Scheduled when a "
        "transaction runs).",
    },
    ("Reset", False): {
        "type": "Soft stops transactions cleanly and restarts the software; Hard may "
        "restart at once.",
    },
    ("RemoteStartTransaction", False): {
        "connectorId": "The connector to start on (from 1); left out, the charger chooses.",
        "idTag": "The idTag the transaction is started for.",
        "chargingProfile": "A TxProfile for this transaction only.",
    },
    ("RemoteStopTransaction", False): {
        "transactionId": "The transaction to stop.",
    },
    ("UnlockConnector", False): {
        "connectorId": "The connector whose cable lock to release.",
    },
    ("GetConfiguration", False): {
        "key": 'JSON list of key names, such as ["HeartbeatInterval"]; left out, every key.',
    },
    ("ReserveNow", False): {
        "connectorId": "The connector to reserve; 0 reserves any free connector, where "
        "the charger allows it.",
        "idTag": "The idTag the connector is reserved for.",
        "parentIdTag": "Members of this group may also use the reservation.",
    },
    ("SetChargingProfile", False): {
        "connectorId": "The connector the profile is for; 0 means the charger as a whole.",
        "csChargingProfiles": "The charging profile to install.",
    },
    ("ClearChargingProfile", False): {
        "id": "The id of the profile to remove; left out, every profile that matches "
        "the other fields.",
        "connectorId": "Only profiles of this connector (0: the charger as a whole).",
        "chargingProfilePurpose": "Only profiles of this purpose.",
        "stackLevel": "Only profiles of this stack level.",
    },
    ("GetCompositeSchedule", False): {
        "connectorId": "The connector; 0 asks for the charger's total expected consumption.",
        "duration": "How many seconds of the schedule to report, from now.",
        "chargingRateUnit": "The unit to report in, A or W; left out, the charger chooses.",
    },
    ("TriggerMessage", False): {
        "connectorId": "For connector-related messages only; left out, the charger as a whole.",
    },
    ("ExtendedTriggerMessage", False): {
        "connectorId": "For connector-related messages only; left out, the charger as a whole.",
    },
    ("UpdateFirmware", False): {
        "location": "The URI the charger downloads the firmware from.",
    },
    ("GetDiagnostics", False): {
        "location": "The directory (URI) the charger uploads its diagnostics file to.",
    },
    ("DataTransfer", False): {
        "vendorId": "Who defines this data; a charger that does not know it answers "
        "UnknownVendorId.",
    },
    ("BootNotification", True): {
        "status": "Accepted registers the charger; Pending and Rejected make it boot "
        "again after interval.",
        "interval": "Seconds: the heartbeat interval when Accepted, else the wait "
        "before the next BootNotification.",
    },
    ("Heartbeat", True): {
        "currentTime": "The central system's clock. {now} is the time of the answer.",
    },
    ("DataTransfer", True): {
        "status": "Accepted or Rejected, or that the vendorId or messageId is unknown here.",
        "data": "Free text, the answer to the data the charger sent.",
    },
    ("StartTransaction", True): {
        "transactionId": "The id the charger uses for this transaction from now on. "
        "{transactionId} is the next one.",
    },
    ("StopTransaction", True): {
        "idTagInfo": "Only when the charger sent the idTag that stopped the transaction.",
    },
    ("SignCertificate", True): {
        "status": "Accepted: the central system will have the certificate signed.",
    },
}


def _suffixes(path: str) -> Iterator[str]:
    """`a.b.c`, then `b.c`, then `c`."""
    parts = path.split(".")
    for start in range(len(parts)):
        yield ".".join(parts[start:])


def field_help(action: str, response: bool, path: str) -> str:
    """The line of help for the field at `path` of `action`'s request (or answer); "" if none."""
    own = BY_MESSAGE.get((action, response), {})
    for table in (own, COMMON):
        for suffix in _suffixes(path):
            if suffix in table:
                return table[suffix]
    return ""
