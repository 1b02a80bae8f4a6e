"""The OCPP 1.6 checks of the feature profiles beyond Core (OCPP 1.6 sections 3.6-3.13, 5).

Each check follows one OCTT charge-point test case and carries its id: local authorization
lists (TC_042, TC_043, TC_008), reservations (TC_046-TC_051), firmware and diagnostics
(TC_044, TC_045), remote trigger (TC_054, TC_055) and smart charging (TC_056-TC_072).
`PROFILE_CHECKS` joins the Core checks in the OCPP 1.6 catalogue, whose `prepare` fills in
the context (connectors, configuration, SupportedFeatureProfiles) and whose `cleanup` stops
what a check left running and unplugs. What only these checks make (a local list, a
reservation, a charging profile, a changed configuration key) they undo themselves, also
when they fail, so that the next check starts from the common preconditions.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

from ocpplab.core.checks import (
    Absent,
    Answer,
    Call,
    Check,
    CheckFailed,
    Context,
    Expect,
    Match,
    NotApplicable,
    Script,
    Seen,
    SetRule,
    Timeout,
    describe,
)
from ocpplab.dialects.ocpp16 import check_steps as steps
from ocpplab.dialects.ocpp16.check_steps import (
    charger_call,
    expect_status,
    status,
    wait_status,
)

Body = Callable[[], Script]

# How long a real charger may take; the simulated one answers at once.
SHORT = 15.0  # what follows a call at once (a status, a triggered message)
FIRMWARE_STEP = 300.0  # a download or an installation
REBOOT = 300.0
EXPIRY = 5  # seconds until the reservation of TC_047 expires


# Small steps shared by the checks


def _now(ctx: Context) -> datetime.datetime:
    assert ctx.clock is not None
    return ctx.clock.now().replace(microsecond=0)


def _iso(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).isoformat().replace("+00:00", "Z")


def _call(
    action: str,
    payload: dict[str, Any],
    *wanted: str,
    title: str | None = None,
    what: str | None = None,
) -> Script:
    """Send `action`; fail unless its status is one of `wanted`; the answer."""
    answer: Answer = yield Call(action, payload, title=title)
    expect_status(answer, *wanted, what=what or action)
    return answer


def _tidy(action: str, payload: dict[str, Any], title: str) -> Script:
    """Undo what a check made; how the charger answers does not change the verdict."""
    yield Call(action, payload, title=title)


def _with_config(
    ctx: Context, wanted: dict[str, str], body: Body, *, optional: tuple[str, ...] = ()
) -> Script:
    """Run `body` with configuration keys set to `wanted`, then put back what they were.

    A key the charger will not set makes the check not applicable (it cannot be run as the
    test case needs), unless it is `optional` ("if implemented" in the test case)."""
    restore: dict[str, str] = {}
    failure: BaseException | None = None
    try:
        for key, value in wanted.items():
            before = ctx.config.get(key)
            if before is not None and before.lower() == value.lower():
                continue
            answer = yield Call(
                "ChangeConfiguration", {"key": key, "value": value}, title=f"Set {key} to {value}"
            )
            if answer.status in ("Accepted", "RebootRequired"):
                if before is not None:
                    restore[key] = before
                ctx.config[key] = value
                continue
            if key in optional and answer.status in ("NotSupported", None):
                continue
            raise NotApplicable(f"the charger would not set {key} to {value} ({answer.describe()})")
        yield from body()
    except (CheckFailed, NotApplicable) as error:
        failure = error
    for key, before in restore.items():
        yield from _tidy(
            "ChangeConfiguration", {"key": key, "value": before}, f"Put {key} back to {before}"
        )
        ctx.config[key] = before
    if failure is not None:
        raise failure


def _start_charging(ctx: Context) -> Script:
    """The card first, then the cable (the cleanup unplugs): the card's StartTransaction,
    its transaction id known."""
    yield from steps.present_card(
        ctx, f"Present the card {ctx.id_tag} at connector {ctx.connector}"
    )
    yield from steps.plug(ctx)
    start: Seen = yield from steps.expect_started(ctx, ctx.connector, id_tag=ctx.id_tag)
    yield from steps.transaction_of(ctx, start)
    return start


def _next(action: str, what: str, within: float, near: Match | None = None) -> Expect:
    """The next CALL of `action` from the charger, whatever its status."""
    return Expect(what, charger_call(action), within, near=near)


def _sequence(
    action: str, wanted: tuple[str, ...], within: float, *, again: tuple[str, ...] = ()
) -> Script:
    """The charger's `action` notifications carry `wanted` statuses in this order (a status
    repeated, such as a download's progress, counts once, as do those `again`); fail at the
    first other one."""
    for state in wanted:
        while True:
            seen: Seen = yield _next(action, f"{action} {state}", within)
            got = seen.payload.get("status")
            if got == state:
                break
            if got in wanted[: wanted.index(state)] or got in again:
                continue  # the previous status again
            raise CheckFailed(f"{action}: expected {state}; got {got}")


# LocalAuthListManagement (OCPP 1.6 sections 3.5, 5.10, 5.15)


def _list_version(ctx: Context, what: str) -> Script:
    answer: Answer = yield Call("GetLocalListVersion", {}, title="Ask for the local list version")
    version = answer.payload.get("listVersion") if isinstance(answer.payload, dict) else None
    if answer.outcome != "result" or not isinstance(version, int):
        raise CheckFailed(
            f"GetLocalListVersion ({what}): expected a version; got {answer.describe()}"
        )
    return version


def _expect_version(ctx: Context, wanted: int, what: str) -> Script:
    version = yield from _list_version(ctx, what)
    if version != wanted:
        raise CheckFailed(f"GetLocalListVersion: expected {wanted} ({what}); got {version}")


def _entry(id_tag: str, state: str | None = "Accepted") -> dict[str, Any]:
    return {"idTag": id_tag} if state is None else {"idTag": id_tag, "idTagInfo": {"status": state}}


def _send_list(
    version: int, update: str, entries: list[dict[str, Any]] | None, *wanted: str
) -> Script:
    payload: dict[str, Any] = {"listVersion": version, "updateType": update}
    if entries is not None:
        payload["localAuthorizationList"] = entries
    size = len(entries or [])
    title = (
        f"Send a {update} local list, version {version}, {size} entr{'y' if size == 1 else 'ies'}"
    )
    answer: Answer = yield Call("SendLocalList", payload, title=title)
    expect_status(answer, *wanted, what=f"SendLocalList ({update}, version {version})")
    return answer


def _clear_list() -> Script:
    yield from _tidy(
        "SendLocalList", {"listVersion": 1, "updateType": "Full"}, "Empty the local list again"
    )


def _with_list(ctx: Context, body: Body) -> Script:
    """Run `body` (which sends a local list) and empty the list afterwards."""
    failure: BaseException | None = None
    try:
        yield from body()
    except (CheckFailed, NotApplicable) as error:
        failure = error
    yield from _clear_list()
    if failure is not None:
        raise failure


def tc_042_1(ctx: Context) -> Script:
    """TC_042_1_CS: with the list not supported or disabled, the version is -1 (or the
    call is refused NotSupported)."""

    def body() -> Script:
        answer: Answer = yield Call(
            "GetLocalListVersion", {}, title="Ask for the local list version"
        )
        if answer.outcome == "error" and answer.error_code == "NotSupported":
            return
        version = answer.payload.get("listVersion") if isinstance(answer.payload, dict) else None
        if version != -1:
            got = version if isinstance(version, int) else answer.describe()
            raise CheckFailed(
                f"GetLocalListVersion: expected -1 (local list disabled) or CALLERROR "
                f"NotSupported; got {got}"
            )

    if ctx.profiles is not None and "LocalAuthListManagement" not in ctx.profiles:
        yield from body()
        return
    yield from _with_config(ctx, {"LocalAuthListEnabled": "false"}, body)


def tc_042_2(ctx: Context) -> Script:
    """TC_042_2_CS: a Full update without entries empties the list: version 0."""
    yield from _with_config(ctx, {"LocalAuthListEnabled": "true"}, lambda: _empty_reads_zero(ctx))


def _empty_reads_zero(ctx: Context) -> Script:
    yield from _send_list(1, "Full", None, "Accepted")
    yield from _expect_version(ctx, 0, "the list is empty")


def tc_043(ctx: Context) -> Script:
    """TC_043_CS: a Full update, then a Differential one that adds and removes entries."""

    def updates() -> Script:
        yield from _send_list(
            3,
            "Full",
            [_entry(ctx.id_tag), _entry("OCPPLAB-GONE"), _entry("OCPPLAB-BLOCK", "Blocked")],
            "Accepted",
        )
        yield from _expect_version(ctx, 3, "after the Full update")
        yield from _send_list(
            4, "Differential", [_entry("OCPPLAB-NEW"), _entry("OCPPLAB-GONE", None)], "Accepted"
        )
        yield from _expect_version(ctx, 4, "after the Differential update")

    yield from _with_config(ctx, {"LocalAuthListEnabled": "true"}, lambda: _with_list(ctx, updates))


def tc_043_2(ctx: Context) -> Script:
    """TC_043_2_CS: a Differential update older than the list is refused VersionMismatch."""

    def updates() -> Script:
        yield from _send_list(2, "Full", [_entry(ctx.id_tag)], "Accepted")
        yield from _expect_version(ctx, 2, "after the Full update")
        yield from _send_list(5, "Differential", [_entry("OCPPLAB-NEW")], "Accepted")
        yield from _expect_version(ctx, 5, "after the Differential update")
        yield from _send_list(4, "Differential", [_entry("OCPPLAB-OLD")], "VersionMismatch")
        yield from _expect_version(ctx, 5, "the refused update changed nothing")

    yield from _with_config(ctx, {"LocalAuthListEnabled": "true"}, lambda: _with_list(ctx, updates))


def tc_008(ctx: Context) -> Script:
    """TC_008_CS: a tag in the local list starts a transaction without asking (the central
    system would refuse it: only the list can have let it in)."""

    def charge() -> Script:
        version = yield from _list_version(ctx, "before the update")
        yield from _send_list(max(version, 0) + 1, "Full", [_entry(ctx.id_tag)], "Accepted")
        yield SetRule(
            "Authorize",
            {"mode": "custom", "payload": {"idTagInfo": {"status": "Invalid"}}},
            title="Answer Authorize Invalid (only the local list may let the card in)",
        )
        yield from steps.present_card(ctx, f"Present the card {ctx.id_tag}")
        asked = charger_call("Authorize", idTag=ctx.id_tag)
        seen = yield Expect(
            f"StatusNotification Preparing on connector {ctx.connector}",
            lambda seen: status(ctx.connector, "Preparing")(seen) or asked(seen),
            SHORT,
            near=lambda seen: asked(seen) or status(ctx.connector)(seen),
        )
        if seen.action == "Authorize":
            # Refused (Invalid) while the rule holds, so the card starts nothing afterwards.
            yield Expect("the answer to Authorize", steps.answer_for(seen), SHORT)
            raise CheckFailed(
                "expected the card accepted from the local list (LocalPreAuthorize); "
                "got Authorize: the charger asked the central system"
            )
        yield from steps.plug(ctx)
        yield from steps.expect_started(ctx, ctx.connector, id_tag=ctx.id_tag)

    settings = {
        "LocalAuthListEnabled": "true",
        "LocalPreAuthorize": "true",
        "AuthorizationCacheEnabled": "false",
    }
    yield from _with_config(
        ctx,
        settings,
        lambda: _with_list(ctx, charge),
        optional=("AuthorizationCacheEnabled",),
    )


# Reservation (OCPP 1.6 sections 3.11, 5.4, 5.13)

_RESERVATION_IDS = {"TC_046_1_CS": 461, "TC_047_CS": 471, "TC_048": 481, "TC_049_CS": 491}


def _reserve(
    ctx: Context,
    reservation_id: int,
    *wanted: str,
    connector: int | None = None,
    expires: float = 600,
) -> Script:
    expiry = _now(ctx) + datetime.timedelta(seconds=expires)
    target = ctx.connector if connector is None else connector
    payload = {
        "connectorId": target,
        "expiryDate": _iso(expiry),
        "idTag": ctx.id_tag,
        "reservationId": reservation_id,
    }
    answer: Answer = yield Call(
        "ReserveNow", payload, title=f"Reserve connector {target} for {ctx.id_tag}"
    )
    expect_status(answer, *wanted, what=f"ReserveNow (connector {target})")
    return answer


def _cancel_on_failure(reservation_id: int, body: Body) -> Script:
    failure: BaseException | None = None
    try:
        yield from body()
    except (CheckFailed, NotApplicable) as error:
        failure = error
    if failure is not None:
        yield from _tidy(
            "CancelReservation",
            {"reservationId": reservation_id},
            f"Cancel reservation {reservation_id}",
        )
        raise failure


def _reserved_start(ctx: Context, reservation_id: int) -> Script:
    start = yield from _start_charging(ctx)
    got = start.payload.get("reservationId")
    if got != reservation_id:
        shown = "none" if got is None else repr(got)
        raise CheckFailed(f"StartTransaction: expected reservationId {reservation_id}; got {shown}")


def tc_046_1(ctx: Context) -> Script:
    """TC_046_1_CS: a reserved connector shows Reserved; the reserved card charges on it and
    the StartTransaction names the reservation."""
    rid = _RESERVATION_IDS["TC_046_1_CS"]

    def body() -> Script:
        yield from _reserve(ctx, rid, "Accepted")
        yield wait_status(ctx.connector, "Reserved")
        yield from _reserved_start(ctx, rid)

    yield from _cancel_on_failure(rid, body)


def tc_047(ctx: Context) -> Script:
    """TC_047_CS: a reservation that is not used ends at its expiryDate: Available again."""
    rid = _RESERVATION_IDS["TC_047_CS"]

    def body() -> Script:
        assert ctx.clock is not None
        reserved_at = ctx.clock.monotonic()
        yield from _reserve(ctx, rid, "Accepted", expires=EXPIRY)
        yield wait_status(ctx.connector, "Reserved")
        try:
            ended: Seen = yield wait_status(ctx.connector, "Available", within=EXPIRY + 20.0)
        except Timeout as error:
            raise CheckFailed(f"the reservation did not end at its expiryDate: {error}") from None
        after = ended.at - reserved_at
        if after < EXPIRY - 2:
            raise CheckFailed(
                f"expected the reservation to last until its expiryDate ({EXPIRY} s); "
                f"Available after {after:.1f} s"
            )

    yield from _cancel_on_failure(rid, body)


def tc_048_2(ctx: Context) -> Script:
    """TC_048_2_CS: with a cable plugged in, ReserveNow is answered Occupied."""
    yield from steps.plug(ctx)
    yield wait_status(ctx.connector, "Preparing")
    rid = _RESERVATION_IDS["TC_048"]
    yield from _cancel_on_failure(rid, lambda: _reserve(ctx, rid, "Occupied"))


def tc_048_3(ctx: Context) -> Script:
    """TC_048_3_CS: an Inoperative connector answers ReserveNow Unavailable."""
    connector = ctx.connector
    failure: BaseException | None = None
    rid = _RESERVATION_IDS["TC_048"]
    try:
        yield from _call(
            "ChangeAvailability",
            {"connectorId": connector, "type": "Inoperative"},
            "Accepted",
            title=f"Make connector {connector} Inoperative",
        )
        yield wait_status(connector, "Unavailable")
        yield from _cancel_on_failure(rid, lambda: _reserve(ctx, rid, "Unavailable"))
    except (CheckFailed, NotApplicable) as error:
        failure = error
    yield from _tidy(
        "ChangeAvailability",
        {"connectorId": connector, "type": "Operative"},
        f"Make connector {connector} Operative again",
    )
    if failure is not None:
        raise failure
    yield wait_status(connector, "Available")


def tc_049(ctx: Context) -> Script:
    """TC_049_CS: a reservation of connector 0 (any connector): Accepted and then honoured
    when ReserveConnectorZeroSupported is true, Rejected when it is not."""
    rid = _RESERVATION_IDS["TC_049_CS"]
    supported = (ctx.config.get("ReserveConnectorZeroSupported") or "false").lower() == "true"
    if not supported:
        yield from _cancel_on_failure(rid, lambda: _reserve(ctx, rid, "Rejected", connector=0))
        return

    def body() -> Script:
        yield from _reserve(ctx, rid, "Accepted", connector=0)
        yield from _reserved_start(ctx, rid)

    yield from _cancel_on_failure(rid, body)


def tc_051(ctx: Context) -> Script:
    """TC_051_CS: CancelReservation of a reservation: Accepted, the connector Available again."""
    rid = 511

    def body() -> Script:
        yield from _reserve(ctx, rid, "Accepted")
        yield wait_status(ctx.connector, "Reserved")
        yield from _call(
            "CancelReservation",
            {"reservationId": rid},
            "Accepted",
            title=f"Cancel reservation {rid}",
        )
        yield wait_status(ctx.connector, "Available", within=SHORT)

    yield from _cancel_on_failure(rid, body)


def tc_052(ctx: Context) -> Script:
    """TC_052_CS: CancelReservation of a reservation the charger does not have: Rejected."""
    yield from _call(
        "CancelReservation",
        {"reservationId": 52_052},
        "Rejected",
        title="Cancel reservation 52052, which was never made",
    )


# FirmwareManagement (OCPP 1.6 sections 3.4, 5.9, 5.19)


def _firmware_location(ctx: Context) -> str:
    location = ctx.facts.get("firmware_location")
    return location if isinstance(location, str) else "https://firmware.invalid/ocpplab-check.bin"


def tc_044_1(ctx: Context) -> Script:
    """TC_044_1_CS: UpdateFirmware: Downloading, Downloaded, Installing, a reboot
    (BootNotification), then Installed."""
    payload = {"location": _firmware_location(ctx), "retrieveDate": _iso(_now(ctx))}
    answer: Answer = yield Call("UpdateFirmware", payload, title="Ask for a firmware update now")
    if answer.outcome != "result":
        raise CheckFailed(f"UpdateFirmware: expected an answer; got {answer.describe()}")
    yield from _sequence("FirmwareStatusNotification", ("Downloading", "Downloaded"), FIRMWARE_STEP)
    yield from _sequence("FirmwareStatusNotification", ("Installing",), FIRMWARE_STEP)
    while True:
        seen: Seen = yield Expect(
            "BootNotification (the reboot after installing)",
            lambda seen: (
                charger_call("BootNotification")(seen)
                or charger_call("FirmwareStatusNotification")(seen)
            ),
            REBOOT,
        )
        if seen.action == "BootNotification":
            break
        if seen.payload.get("status") != "Installing":
            raise CheckFailed(
                f"expected a reboot (BootNotification) after Installing; got {describe(seen)}"
            )
    yield from _sequence(
        "FirmwareStatusNotification", ("Installed",), REBOOT, again=("Installing",)
    )


def tc_045_1(ctx: Context) -> Script:
    """TC_045_1_CS: GetDiagnostics names the file it will upload: Uploading, then Uploaded."""
    location = ctx.facts.get("diagnostics_location")
    payload = {"location": location if isinstance(location, str) else "ftp://diagnostics.invalid/"}
    answer: Answer = yield Call("GetDiagnostics", payload, title="Ask for diagnostics")
    name = answer.payload.get("fileName") if isinstance(answer.payload, dict) else None
    if answer.outcome != "result" or not isinstance(name, str) or not name:
        raise CheckFailed(f"GetDiagnostics: expected a fileName; got {answer.describe()}")
    yield from _sequence("DiagnosticsStatusNotification", ("Uploading", "Uploaded"), FIRMWARE_STEP)


# RemoteTrigger (OCPP 1.6 sections 3.10, 5.17)

_TRIGGERED = (
    "BootNotification",
    "DiagnosticsStatusNotification",
    "FirmwareStatusNotification",
    "Heartbeat",
    "MeterValues",
    "StatusNotification",
)


def tc_054(ctx: Context) -> Script:
    """TC_054_CS: TriggerMessage for each message it names: Accepted, and the message comes."""
    for message in _TRIGGERED:
        payload: dict[str, Any] = {"requestedMessage": message}
        match = charger_call(message)
        if message in ("MeterValues", "StatusNotification"):
            payload["connectorId"] = ctx.connector
            match = charger_call(message, connectorId=ctx.connector)
        yield from _call(
            "TriggerMessage",
            payload,
            "Accepted",
            title=f"Trigger {message}",
            what=f"TriggerMessage {message}",
        )
        yield Expect(f"the triggered {message}", match, SHORT)


def tc_055(ctx: Context) -> Script:
    """TC_055_CS: TriggerMessage for a connector that does not exist: Rejected, nothing sent."""
    missing = max(ctx.connectors, ctx.connector) + 1
    yield from _call(
        "TriggerMessage",
        {"requestedMessage": "MeterValues", "connectorId": missing},
        "Rejected",
        title=f"Trigger MeterValues for connector {missing}, which does not exist",
    )
    yield Absent(
        f"MeterValues for connector {missing}",
        charger_call("MeterValues", connectorId=missing),
        3.0,
    )


# SmartCharging (OCPP 1.6 sections 3.13, 5.7, 5.16, 6.x)

DURATION = 400  # seconds of the composite schedules asked for


def _rate_unit(ctx: Context) -> tuple[str, float]:
    """The unit limits are set in ("A", or "W" for a charger that takes only power) and the
    factor a limit in amperes is multiplied by (OCTT's convention: W limits x 1000)."""
    allowed = ctx.config.get("ChargingScheduleAllowedChargingRateUnit")
    if allowed is not None and "current" not in allowed.lower():
        return "W", 1000.0
    return "A", 1.0


def _profile(
    ctx: Context,
    profile_id: int,
    purpose: str,
    stack: int,
    periods: list[tuple[int, float]],
    *,
    start: datetime.datetime | None = None,
    duration: int | None = None,
    transaction_id: int | None = None,
) -> dict[str, Any]:
    unit, factor = _rate_unit(ctx)
    schedule: dict[str, Any] = {
        "chargingRateUnit": unit,
        "chargingSchedulePeriod": [
            {"startPeriod": offset, "limit": limit * factor} for offset, limit in periods
        ],
    }
    profile: dict[str, Any] = {
        "chargingProfileId": profile_id,
        "stackLevel": stack,
        "chargingProfilePurpose": purpose,
        "chargingSchedule": schedule,
    }
    if duration is not None:
        schedule["duration"] = duration
    if start is None:
        profile["chargingProfileKind"] = "Relative"
    else:
        profile["chargingProfileKind"] = "Absolute"
        schedule["startSchedule"] = _iso(start)
    if transaction_id is not None:
        profile["transactionId"] = transaction_id
    return profile


def _set_profile(connector: int, profile: dict[str, Any], *wanted: str) -> Script:
    purpose = profile["chargingProfilePurpose"]
    title = (
        f"Set {purpose} {profile['chargingProfileId']} (stack level {profile['stackLevel']}) "
        f"on connector {connector}"
    )
    answer: Answer = yield Call(
        "SetChargingProfile", {"connectorId": connector, "csChargingProfiles": profile}, title=title
    )
    expect_status(answer, *wanted, what=f"SetChargingProfile ({purpose})")
    return answer


def _composite(ctx: Context) -> Script:
    """GetCompositeSchedule of the check's connector: (the schedule's start, its periods)."""
    unit, _ = _rate_unit(ctx)
    asked = _now(ctx)
    payload = {"connectorId": ctx.connector, "duration": DURATION, "chargingRateUnit": unit}
    answer: Answer = yield Call(
        "GetCompositeSchedule",
        payload,
        title=f"Ask for the composite schedule of connector {ctx.connector}",
    )
    expect_status(answer, "Accepted", what="GetCompositeSchedule")
    schedule = answer.payload.get("chargingSchedule")
    if not isinstance(schedule, dict):
        return asked, []
    got_unit = schedule.get("chargingRateUnit")
    if got_unit != unit:
        raise CheckFailed(f"GetCompositeSchedule: expected chargingRateUnit {unit}; got {got_unit}")
    start = _parse_time(answer.payload.get("scheduleStart")) or _parse_time(
        schedule.get("startSchedule")
    )
    periods = [
        (float(period["startPeriod"]), float(period["limit"]))
        for period in schedule.get("chargingSchedulePeriod", [])
        if isinstance(period, dict)
        and isinstance(period.get("startPeriod"), int | float)
        and isinstance(period.get("limit"), int | float)
    ]
    return start or asked, sorted(periods)


def _parse_time(value: Any) -> datetime.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=datetime.UTC)


def _limit_at(
    start: datetime.datetime, periods: list[tuple[float, float]], when: datetime.datetime
) -> float | None:
    offset = (when - start).total_seconds()
    limit = None
    for begin, value in periods:
        if begin <= offset:
            limit = value
    return limit


def _expect_limits(
    ctx: Context, what: str, origin: datetime.datetime, wanted: list[tuple[int, float]]
) -> Script:
    """The composite schedule's limit at each (seconds after `origin`, amperes) of `wanted`."""
    start, periods = yield from _composite(ctx)
    _, factor = _rate_unit(ctx)
    for offset, amperes in wanted:
        got = _limit_at(start, periods, origin + datetime.timedelta(seconds=offset))
        if got is None or abs(got - amperes * factor) > 0.05 * factor:
            shown = "no limit" if got is None else f"{got:g}"
            raise CheckFailed(
                f"GetCompositeSchedule ({what}): expected limit {amperes * factor:g} "
                f"{offset} s in; got {shown}"
            )


def _expect_not_limit(ctx: Context, what: str, amperes: float) -> Script:
    start, periods = yield from _composite(ctx)
    _, factor = _rate_unit(ctx)
    got = _limit_at(start, periods, start + datetime.timedelta(seconds=5))
    if got is not None and abs(got - amperes * factor) <= 0.05 * factor:
        raise CheckFailed(
            f"GetCompositeSchedule ({what}): expected the cleared limit {amperes * factor:g} "
            f"gone; got {got:g}"
        )


def _with_profiles(ids: tuple[int, ...], body: Body) -> Script:
    """Run `body`, then clear the charging profiles it set (by id)."""
    failure: BaseException | None = None
    try:
        yield from body()
    except (CheckFailed, NotApplicable) as error:
        failure = error
    for profile_id in ids:
        yield from _tidy(
            "ClearChargingProfile", {"id": profile_id}, f"Clear charging profile {profile_id}"
        )
    if failure is not None:
        raise failure


def tc_056(ctx: Context) -> Script:
    """TC_056_CS: a TxDefaultProfile for the whole charge point (connectorId 0) is accepted
    and the connector's composite schedule follows it."""
    begin = _now(ctx)

    def body() -> Script:
        profile = _profile(ctx, 561, "TxDefaultProfile", 0, [(0, 9.0)], start=begin)
        yield from _set_profile(0, profile, "Accepted")
        yield from _expect_limits(ctx, "TxDefaultProfile 9 A", begin, [(60, 9.0)])

    yield from _with_profiles((561,), body)


def tc_057(ctx: Context) -> Script:
    """TC_057_CS: during a transaction a TxProfile for it is accepted and the composite
    schedule follows it."""
    start = yield from _start_charging(ctx)
    transaction_id = yield from steps.transaction_of(ctx, start)

    def body() -> Script:
        profile = _profile(ctx, 571, "TxProfile", 0, [(0, 8.0)], transaction_id=transaction_id)
        yield from _set_profile(ctx.connector, profile, "Accepted")
        yield from _expect_limits(ctx, "TxProfile 8 A", _now(ctx), [(30, 8.0)])

    yield from _with_profiles((571,), body)


def tc_058_1(ctx: Context) -> Script:
    """TC_058_1_CS: a TxProfile while no transaction runs is refused (Rejected or CALLERROR
    PropertyConstraintViolation)."""

    def body() -> Script:
        profile = _profile(ctx, 581, "TxProfile", 0, [(0, 10.0)], transaction_id=58_100)
        answer: Answer = yield Call(
            "SetChargingProfile",
            {"connectorId": ctx.connector, "csChargingProfiles": profile},
            title="Set a TxProfile for a transaction that does not exist",
        )
        if answer.status == "Rejected" or answer.error_code == "PropertyConstraintViolation":
            return
        raise CheckFailed(
            "SetChargingProfile (TxProfile, no transaction): expected Rejected or CALLERROR "
            f"PropertyConstraintViolation; got {answer.describe()}"
        )

    yield from _with_profiles((581,), body)


def tc_066(ctx: Context) -> Script:
    """TC_066_CS: a ChargePointMaxProfile caps a TxDefaultProfile in the composite schedule
    (the test case's TxProfile left out: it needs no transaction this way)."""
    begin = _now(ctx)

    def body() -> Script:
        cap = _profile(
            ctx, 661, "ChargePointMaxProfile", 0, [(0, 10.0)], start=begin, duration=86_400
        )
        yield from _set_profile(0, cap, "Accepted")
        default = _profile(
            ctx, 662, "TxDefaultProfile", 0, [(0, 6.0), (150, 12.0)], start=begin, duration=DURATION
        )
        yield from _set_profile(ctx.connector, default, "Accepted")
        yield from _expect_limits(
            ctx,
            "TxDefaultProfile 6 A then 12 A under a 10 A maximum",
            begin,
            [(60, 6.0), (250, 10.0)],
        )

    yield from _with_profiles((662, 661), body)


def tc_067(ctx: Context) -> Script:
    """TC_067_CS: ClearChargingProfile by id and by purpose and stack level: Accepted, and
    the cleared limit leaves the composite schedule."""
    begin = _now(ctx)

    def body() -> Script:
        first = _profile(ctx, 671, "TxDefaultProfile", 1, [(0, 8.0)], start=begin)
        yield from _set_profile(ctx.connector, first, "Accepted")
        yield from _expect_limits(ctx, "TxDefaultProfile 8 A", begin, [(30, 8.0)])
        yield from _call(
            "ClearChargingProfile", {"id": 671}, "Accepted", title="Clear profile 671 by id"
        )
        yield from _expect_not_limit(ctx, "after clearing profile 671", 8.0)
        second = _profile(ctx, 672, "TxDefaultProfile", 2, [(0, 7.0)], start=begin)
        yield from _set_profile(ctx.connector, second, "Accepted")
        yield from _expect_limits(ctx, "TxDefaultProfile 7 A", begin, [(30, 7.0)])
        criteria = {
            "connectorId": ctx.connector,
            "chargingProfilePurpose": "TxDefaultProfile",
            "stackLevel": 2,
        }
        yield from _call(
            "ClearChargingProfile",
            criteria,
            "Accepted",
            title="Clear TxDefaultProfiles of stack level 2",
        )
        yield from _expect_not_limit(ctx, "after clearing stack level 2", 7.0)

    yield from _with_profiles((671, 672), body)


def tc_072(ctx: Context) -> Script:
    """TC_072_CS: two stacked TxDefaultProfiles: the higher stack level wins while it lasts,
    then the lower one shows through."""
    begin = _now(ctx)

    def body() -> Script:
        low = _profile(
            ctx,
            721,
            "TxDefaultProfile",
            0,
            [(0, 6.0), (100, 8.0), (200, 10.0)],
            start=begin,
            duration=DURATION,
        )
        yield from _set_profile(ctx.connector, low, "Accepted")
        high = _profile(ctx, 722, "TxDefaultProfile", 1, [(0, 7.0)], start=begin, duration=150)
        yield from _set_profile(ctx.connector, high, "Accepted")
        yield from _expect_limits(
            ctx,
            "stack level 1 for 150 s over stack level 0",
            begin,
            [(60, 7.0), (175, 8.0), (300, 10.0)],
        )

    yield from _with_profiles((722, 721), body)


# The catalogue's part

_CARD = ("present_card", "plug")

PROFILE_CHECKS: tuple[Check, ...] = (
    Check(
        "TC_042_1_CS",
        "Local list version when the list is off",
        "With LocalAuthListEnabled false (or no local list support) GetLocalListVersion says -1",
        "Core",
        tc_042_1,
        "Booted Accepted, idle; LocalAuthListEnabled can be set false (or no local list support)",
    ),
    Check(
        "TC_042_2_CS",
        "Local list version when the list is empty",
        "After a Full update without entries GetLocalListVersion says 0",
        "LocalAuthListManagement",
        tc_042_2,
        "Booted Accepted, idle; LocalAuthListEnabled true",
    ),
    Check(
        "TC_043_CS",
        "Send a local list: full, then differential",
        "A Full and a Differential SendLocalList are Accepted and their versions read back",
        "LocalAuthListManagement",
        tc_043,
        "Booted Accepted, idle; LocalAuthListEnabled true",
    ),
    Check(
        "TC_043_2_CS",
        "Send a local list: version mismatch",
        "A Differential update older than the list is answered VersionMismatch and changes nothing",
        "LocalAuthListManagement",
        tc_043_2,
        "Booted Accepted, idle; LocalAuthListEnabled true",
    ),
    Check(
        "TC_008_CS",
        "Start with a card from the local list",
        "A card in the local list starts a transaction that the central system would refuse",
        "LocalAuthListManagement",
        tc_008,
        "Booted Accepted, idle; LocalPreAuthorize and LocalAuthListEnabled can be set true",
        _CARD,
    ),
    Check(
        "TC_046_1_CS",
        "Reserve a connector and charge on it",
        "ReserveNow is Accepted, the connector Reserved, and the card's StartTransaction names it",
        "Reservation",
        tc_046_1,
        person=_CARD,
    ),
    Check(
        "TC_047_CS",
        "Reservation expiry",
        f"A reservation expiring in {EXPIRY} s leaves the connector Available again",
        "Reservation",
        tc_047,
    ),
    Check(
        "TC_048_2_CS",
        "Reserve an occupied connector",
        "With a cable plugged in, ReserveNow is answered Occupied",
        "Reservation",
        tc_048_2,
        person=("plug",),
    ),
    Check(
        "TC_048_3_CS",
        "Reserve an unavailable connector",
        "An Inoperative connector answers ReserveNow Unavailable",
        "Reservation",
        tc_048_3,
    ),
    Check(
        "TC_049_CS",
        "Reserve connector 0",
        "A reservation of connector 0 is Accepted and honoured, or Rejected when "
        "ReserveConnectorZeroSupported is false",
        "Reservation",
        tc_049,
        "Booted Accepted, idle; ReserveConnectorZeroSupported read",
        _CARD,
    ),
    Check(
        "TC_051_CS",
        "Cancel a reservation",
        "CancelReservation is Accepted and the connector becomes Available",
        "Reservation",
        tc_051,
    ),
    Check(
        "TC_052_CS",
        "Cancel a reservation that does not exist",
        "CancelReservation of an unknown reservationId is Rejected",
        "Reservation",
        tc_052,
    ),
    Check(
        "TC_044_1_CS",
        "Firmware update",
        "UpdateFirmware: Downloading, Downloaded, Installing, a reboot, Installed",
        "FirmwareManagement",
        tc_044_1,
        "Booted Accepted, idle; a firmware image at the location given (fact firmware_location)",
    ),
    Check(
        "TC_045_1_CS",
        "Get diagnostics",
        "GetDiagnostics names a file, then Uploading and Uploaded",
        "FirmwareManagement",
        tc_045_1,
        "Booted Accepted, idle; somewhere to upload to (fact diagnostics_location)",
    ),
    Check(
        "TC_054_CS",
        "Trigger each message",
        "TriggerMessage is Accepted for each message it names, and the message follows",
        "RemoteTrigger",
        tc_054,
    ),
    Check(
        "TC_055_CS",
        "Trigger for a connector that does not exist",
        "TriggerMessage for a connector beyond NumberOfConnectors is Rejected",
        "RemoteTrigger",
        tc_055,
    ),
    Check(
        "TC_056_CS",
        "Default charging profile",
        "A TxDefaultProfile for the whole charge point is Accepted and the composite follows it",
        "SmartCharging",
        tc_056,
        "Booted Accepted, idle, no charging profiles",
    ),
    Check(
        "TC_057_CS",
        "Charging profile of a transaction",
        "A TxProfile during a transaction is Accepted and the composite follows it",
        "SmartCharging",
        tc_057,
        "Booted Accepted, idle, no charging profiles",
        _CARD,
    ),
    Check(
        "TC_058_1_CS",
        "Charging profile without a transaction",
        "A TxProfile while no transaction runs is refused",
        "SmartCharging",
        tc_058_1,
        "Booted Accepted, idle, no charging profiles",
    ),
    Check(
        "TC_066_CS",
        "Composite schedule under a maximum",
        "A ChargePointMaxProfile caps the TxDefaultProfile in the composite schedule",
        "SmartCharging",
        tc_066,
        "Booted Accepted, idle, no charging profiles",
    ),
    Check(
        "TC_067_CS",
        "Clear charging profiles",
        "ClearChargingProfile by id and by criteria is Accepted and the limits go",
        "SmartCharging",
        tc_067,
        "Booted Accepted, idle, no charging profiles",
    ),
    Check(
        "TC_072_CS",
        "Stacked charging profiles",
        "The higher stack level wins while it lasts; the composite schedule shows both",
        "SmartCharging",
        tc_072,
        "Booted Accepted, idle, no charging profiles",
    ),
)
