"""The OCPP 1.6 guided checks: the catalogue, its `prepare` and its `cleanup`.

Each check follows an OCTT charge-point test case and carries its id (`../shared/CHECKS.md`
says what each establishes); the Core profile's are here, the other profiles' in
`checks_profiles`. Scripts are generators of `ocpplab.core.checks` steps; what they share
(matchers, the person's acts, starting a transaction) is in `check_steps`.

Waits are those of a real charger: 30 s for what a person's act causes, two minutes for a
reboot. Where a check chooses an interval or a timeout itself it chooses a small one, so that
a run against a simulated charger (which answers at once) stays short.
"""

from __future__ import annotations

import datetime
import itertools
from collections.abc import Callable
from typing import Any

from ocpplab.core.checks import (
    Absent,
    Answer,
    Ask,
    Call,
    Catalogue,
    Check,
    CheckFailed,
    Context,
    Cut,
    Expect,
    ExpectAll,
    Note,
    Script,
    Seen,
    SetRule,
    Timeout,
    Wait,
    describe,
)
from ocpplab.dialects.ocpp16 import check_steps as steps
from ocpplab.dialects.ocpp16.check_steps import (
    BOOT_WAIT,
    PERSON_WAIT,
    charger_call,
    expect_status,
    start_transaction,
    status,
    stop_transaction,
    wait_status,
)
from ocpplab.dialects.ocpp16.checks_profiles import PROFILE_CHECKS

MAX_KEYS = 1000  # configuration keys read from a charger
MAX_VALUE = 500  # characters of a configuration value kept
REJECTED_INTERVAL = 3  # s: TC_001's Rejected boot
PENDING_INTERVAL = 5  # s: TC_002's Pending boot
HEARTBEAT_INTERVAL = 10  # s: TC_001's Accepted boot
CONNECTION_TIMEOUT = 5  # s: TC_004_2 and TC_011_2
SAMPLE_INTERVAL = 3  # s: TC_070
ALIGNED_INTERVAL = 3  # s: TC_071 (a divisor of a day)
OFFLINE_INTERVAL = 2  # s: TC_036's MeterValueSampleInterval
CUT_SECONDS = 8  # s: TC_036's time offline
PERSON_CUT = 15  # s: offline while the person acts (TC_037_1, TC_038, TC_039)
PARENT_ID_TAG = "OCPPLAB-PARENT"
UNKNOWN_TRANSACTION = 987_654_321
CABLE_IN = ("Preparing", "Charging", "SuspendedEV", "SuspendedEVSE", "Finishing")


# Section 9.1 "Core Profile": each key, whether it is required, and its accessibility
# (R read-only, RW writable, None: the vendor's choice).
CORE_KEYS: dict[str, tuple[bool, bool | None]] = {
    "AllowOfflineTxForUnknownId": (False, False),
    "AuthorizationCacheEnabled": (False, False),
    "AuthorizeRemoteTxRequests": (True, None),
    "BlinkRepeat": (False, False),
    "ClockAlignedDataInterval": (True, False),
    "ConnectionTimeOut": (True, False),
    "ConnectorPhaseRotation": (True, False),
    "ConnectorPhaseRotationMaxLength": (False, True),
    "GetConfigurationMaxKeys": (True, True),
    "HeartbeatInterval": (True, False),
    "LightIntensity": (False, False),
    "LocalAuthorizeOffline": (True, False),
    "LocalPreAuthorize": (True, False),
    "MaxEnergyOnInvalidId": (False, False),
    "MeterValuesAlignedData": (True, False),
    "MeterValuesAlignedDataMaxLength": (False, True),
    "MeterValuesSampledData": (True, False),
    "MeterValuesSampledDataMaxLength": (False, True),
    "MeterValueSampleInterval": (True, False),
    "MinimumStatusDuration": (False, False),
    "NumberOfConnectors": (True, True),
    "ResetRetries": (True, False),
    "StopTransactionOnEVSideDisconnect": (True, False),
    "StopTransactionOnInvalidId": (True, False),
    "StopTxnAlignedData": (True, False),
    "StopTxnAlignedDataMaxLength": (False, True),
    "StopTxnSampledData": (True, False),
    "StopTxnSampledDataMaxLength": (False, True),
    "SupportedFeatureProfiles": (True, True),
    "SupportedFeatureProfilesMaxLength": (False, True),
    "TransactionMessageAttempts": (True, False),
    "TransactionMessageRetryInterval": (True, False),
    "UnlockConnectorOnEVSideDisconnect": (True, False),
    "WebSocketPingInterval": (False, False),
}


# Prepare and clean up


def prepare(ctx: Context) -> Script:
    """Read the configuration (keys, profiles, connectors); MinimumStatusDuration to 0."""
    answer = yield Call("GetConfiguration", {}, title="Read the charger's configuration")
    if answer.outcome != "result" or not isinstance(answer.payload, dict):
        raise CheckFailed(f"GetConfiguration: expected its keys; got {answer.describe()}")
    read_configuration(ctx, answer.payload)
    if ctx.config.get("MinimumStatusDuration") not in (None, "0") and not ctx.readonly.get(
        "MinimumStatusDuration"
    ):
        old = ctx.config["MinimumStatusDuration"]
        changed = yield Call(
            "ChangeConfiguration",
            {"key": "MinimumStatusDuration", "value": "0"},
            title="Set MinimumStatusDuration to 0 (every status change is reported)",
        )
        if changed.status == "Accepted":
            # Restored by the runner once the run ends (not after each check).
            ctx.facts.setdefault("restore_after_run", {})["MinimumStatusDuration"] = old
            ctx.config["MinimumStatusDuration"] = "0"


def read_configuration(ctx: Context, payload: dict[str, Any]) -> None:
    """Fill the context from a GetConfiguration answer, bounded in keys and characters."""
    keys = payload.get("configurationKey")
    for item in (keys if isinstance(keys, list) else [])[:MAX_KEYS]:
        if not isinstance(item, dict) or not isinstance(item.get("key"), str):
            continue
        key = item["key"][:50]
        value = item.get("value")
        ctx.config[key] = value[:MAX_VALUE] if isinstance(value, str) else None
        ctx.readonly[key] = item.get("readonly") is True
    profiles = ctx.config.get("SupportedFeatureProfiles")
    if profiles is None:
        ctx.profiles = None
    else:
        names = {name.strip()[:40] for name in profiles.split(",")[:20] if name.strip()}
        ctx.profiles = names | {"Core"}
    number = (ctx.config.get("NumberOfConnectors") or "").strip()
    ctx.connectors = min(int(number), 100) if number.isdigit() and int(number) > 0 else 1
    ctx.connector = min(max(ctx.connector, 1), ctx.connectors)


def cleanup(ctx: Context) -> Script:
    """After every check, whatever its verdict: stop what it started, restore what it
    changed, free the cable, and wait until the connector is Available again."""
    acted = False
    for number in steps.open_transactions(ctx):
        acted = True
        answer = yield Call(
            "RemoteStopTransaction",
            {"transactionId": number},
            title=f"Stop transaction {number}, which the check left running",
        )
        if answer.status == "Accepted":
            try:
                yield Expect(
                    f"StopTransaction of transaction {number}",
                    stop_transaction(transaction_id=number),
                    PERSON_WAIT,
                )
            except Timeout:
                yield Note(f"transaction {number} did not stop")
    # The cable is in when the check said so, or when the connector's status says so.
    plugged = set(ctx.facts.pop("plugged", set()))
    if steps.last_status(ctx, ctx.connector) in CABLE_IN:
        plugged.add(ctx.connector)
    for connector in sorted(plugged):
        acted = True
        yield Ask(
            f"Unplug the cable from connector {connector}", "unplug", {"connector": connector}
        )
    for key, old in ctx.facts.pop("changed_keys", {}).items():
        if old is None:
            continue
        yield Call(
            "ChangeConfiguration", {"key": key, "value": old}, title=f"Restore {key} to {old}"
        )
        ctx.config[key] = old
    for connector in sorted(ctx.facts.pop("inoperative", set())):
        acted = True
        yield Call(
            "ChangeAvailability",
            {"connectorId": connector, "type": "Operative"},
            title=f"Make connector {connector} Operative again",
        )
    last = steps.last_status(ctx, ctx.connector)
    if acted and last not in (None, "Available"):
        yield wait_status(ctx.connector, "Available", within=PERSON_WAIT)


# Helpers of the scripts below


def _boot_rule(*answers: tuple[str, int]) -> dict[str, Any]:
    """A BootNotification answer sequence: (status, interval) in turn, the last one kept."""
    return {
        "sequence": [
            {
                "mode": "custom",
                "payload": {"status": state, "currentTime": "{now}", "interval": interval},
            }
            for state, interval in answers
        ]
    }


def _all_statuses(ctx: Context) -> ExpectAll:
    return ExpectAll(
        tuple(
            (f"StatusNotification of connector {number}", status(number))
            for number in range(ctx.connectors + 1)
        ),
        within=PERSON_WAIT,
    )


def _authorize_expected(ctx: Context) -> bool:
    """Whether a card is authorized with an Authorize (not from the cache, section 3.5.2)."""
    return ctx.config.get("LocalPreAuthorize") != "true"


def _no_start(ctx: Context, why: str) -> None:
    started = [seen for seen in ctx.log if charger_call("StartTransaction")(seen)]
    if started:
        raise CheckFailed(f"expected no StartTransaction ({why}); got {describe(started[0])}")


def _configuration(answer: Answer) -> dict[str, dict[str, Any]]:
    keys = answer.payload.get("configurationKey") if isinstance(answer.payload, dict) else None
    return {
        item["key"]: item
        for item in (keys if isinstance(keys, list) else [])[:MAX_KEYS]
        if isinstance(item, dict) and isinstance(item.get("key"), str)
    }


def _make_inoperative(ctx: Context) -> Script:
    connector = ctx.connector
    answer = yield Call(
        "ChangeAvailability",
        {"connectorId": connector, "type": "Inoperative"},
        title=f"Make connector {connector} Inoperative (ChangeAvailability)",
    )
    expect_status(answer, "Accepted", what="ChangeAvailability Inoperative")
    ctx.facts.setdefault("inoperative", set()).add(connector)
    yield wait_status(connector, "Unavailable", within=PERSON_WAIT)


def _still_unavailable(ctx: Context, after: str) -> Script:
    connector = ctx.connector
    yield Expect(f"BootNotification after the {after}", charger_call("BootNotification"), BOOT_WAIT)
    seen = yield Expect(
        f"StatusNotification of connector {connector} after the boot",
        status(connector),
        PERSON_WAIT,
    )
    if seen.payload.get("status") != "Unavailable":
        raise CheckFailed(
            f"connector {connector} after the {after}: expected Unavailable (it was made "
            f"Inoperative); got {seen.payload.get('status')}"
        )


# The checks: booting


def tc_001(ctx: Context) -> Script:
    steps.remember_key(ctx, "HeartbeatInterval")  # the Accepted boot's interval sets it
    yield SetRule(
        "BootNotification",
        _boot_rule(("Rejected", REJECTED_INTERVAL), ("Accepted", HEARTBEAT_INTERVAL)),
        title=f"Answer BootNotification Rejected ({REJECTED_INTERVAL} s), then Accepted",
    )
    yield from steps.power_cycle(ctx)
    yield Expect(
        "BootNotification (answered Rejected)", charger_call("BootNotification"), BOOT_WAIT
    )
    yield Absent(
        f"call from the charger in the Rejected boot's interval of {REJECTED_INTERVAL} s",
        steps.any_charger_call,
        REJECTED_INTERVAL - 0.5,
    )
    yield Expect(
        "BootNotification again after the interval (answered Accepted)",
        charger_call("BootNotification"),
        PERSON_WAIT,
    )
    yield _all_statuses(ctx)
    yield Expect(
        f"Heartbeat at the interval of {HEARTBEAT_INTERVAL} s",
        charger_call("Heartbeat"),
        HEARTBEAT_INTERVAL + 10,
    )


def tc_002(ctx: Context) -> Script:
    interval = ctx.config.get("HeartbeatInterval") or "60"
    accepted = int(interval) if interval.isdigit() and int(interval) > 0 else 60
    steps.remember_key(ctx, "HeartbeatInterval")
    yield SetRule(
        "BootNotification",
        _boot_rule(("Pending", PENDING_INTERVAL), ("Accepted", accepted)),
        title=f"Answer BootNotification Pending ({PENDING_INTERVAL} s), then Accepted",
    )
    yield from steps.power_cycle(ctx)
    yield Expect("BootNotification (answered Pending)", charger_call("BootNotification"), BOOT_WAIT)
    read = yield Call("GetConfiguration", {"key": ["HeartbeatInterval"]})
    if read.outcome != "result" or "HeartbeatInterval" not in _configuration(read):
        raise CheckFailed(
            f"GetConfiguration while Pending: expected HeartbeatInterval; got {read.describe()}"
        )
    change = yield Call("ChangeConfiguration", {"key": "HeartbeatInterval", "value": str(accepted)})
    expect_status(change, "Accepted", what="ChangeConfiguration while Pending")
    yield Expect(
        "BootNotification again after the interval (answered Accepted)",
        charger_call("BootNotification"),
        PENDING_INTERVAL + PERSON_WAIT,
    )
    yield _all_statuses(ctx)


# Local start and stop


def tc_003(ctx: Context) -> Script:
    connector = ctx.connector
    yield from steps.plug(ctx)
    yield wait_status(connector, "Preparing", within=PERSON_WAIT)
    yield from steps.present_card(ctx)
    start = yield from steps.expect_started(ctx, connector)
    if _authorize_expected(ctx) and not steps.earlier(ctx, start, charger_call("Authorize")):
        raise CheckFailed("expected Authorize before StartTransaction; got StartTransaction first")


def tc_004_1(ctx: Context) -> Script:
    connector = ctx.connector
    yield from steps.present_card(ctx)
    if _authorize_expected(ctx):
        yield Expect("Authorize", charger_call("Authorize"), PERSON_WAIT)
    yield from steps.plug(ctx)
    yield from steps.expect_started(ctx, connector)


def tc_004_2(ctx: Context) -> Script:
    connector = ctx.connector
    yield from steps.change_key(ctx, "ConnectionTimeOut", str(CONNECTION_TIMEOUT))
    yield from steps.present_card(ctx, "Present your card, and do not plug in")
    if _authorize_expected(ctx):
        yield Expect("Authorize", charger_call("Authorize"), PERSON_WAIT)
    yield wait_status(connector, "Preparing", within=PERSON_WAIT)
    yield Absent(
        f"StatusNotification Available before ConnectionTimeOut ({CONNECTION_TIMEOUT} s)",
        status(connector, "Available"),
        CONNECTION_TIMEOUT / 2,
    )
    yield wait_status(connector, "Available", within=CONNECTION_TIMEOUT + PERSON_WAIT)
    _no_start(ctx, "no cable was plugged in")


def tc_068(ctx: Context) -> Script:
    start = yield from steps.start_by_card(ctx)
    yield from steps.present_card(ctx, "Present the same card again to stop charging")
    stop = yield Expect("StopTransaction", stop_transaction(), PERSON_WAIT)
    steps.expect_reason(stop, "Local")
    if stop.payload.get("transactionId") != steps.transaction_id_of(ctx, start):
        raise CheckFailed(
            f"StopTransaction transactionId: expected {steps.transaction_id_of(ctx, start)}; "
            f"got {stop.payload.get('transactionId')}"
        )


def tc_069(ctx: Context) -> Script:
    info = {"status": "Accepted", "parentIdTag": PARENT_ID_TAG}
    yield SetRule("Authorize", {"mode": "custom", "payload": {"idTagInfo": info}})
    yield SetRule(
        "StartTransaction",
        {"mode": "custom", "payload": {"idTagInfo": info, "transactionId": "{transactionId}"}},
    )
    start = yield from steps.start_by_card(ctx)
    first = start.payload.get("idTag")
    yield from steps.present_card(
        ctx,
        f"Present another card (not the first one) to stop charging: ocpplab answers every "
        f"card with parentIdTag {PARENT_ID_TAG}",
        id_tag=steps.second_tag(ctx),
    )
    other = yield Expect(
        "Authorize of the other card",
        lambda seen: charger_call("Authorize")(seen) or charger_call("StopTransaction")(seen),
        PERSON_WAIT,
    )
    if other.action == "StopTransaction" or other.payload.get("idTag") == first:
        raise CheckFailed(
            f"expected Authorize of a card other than {first}; got {describe(other)} "
            "(was the same card presented?)"
        )
    stop = yield Expect("StopTransaction", stop_transaction(), PERSON_WAIT)
    steps.expect_reason(stop, "Local")


def tc_005_1(ctx: Context) -> Script:
    connector = ctx.connector
    if ctx.config.get("StopTransactionOnEVSideDisconnect") != "true":
        yield from steps.change_key(ctx, "StopTransactionOnEVSideDisconnect", "true")
    yield from steps.start_by_card(ctx)
    yield from steps.unplug(ctx)
    stop = yield Expect("StopTransaction", stop_transaction(), PERSON_WAIT)
    steps.expect_reason(stop, "EVDisconnected")
    if steps.last_status(ctx, connector) != "Available":
        yield wait_status(connector, "Available", within=PERSON_WAIT)


def tc_007(ctx: Context) -> Script:
    connector = ctx.connector
    yield from steps.change_key(ctx, "AuthorizationCacheEnabled", "true")
    yield from steps.change_key(ctx, "LocalPreAuthorize", "true")
    yield Note("First a session, so that the card is in the authorization cache")
    yield from steps.start_by_card(ctx)
    yield from steps.present_card(ctx, "Present the same card to stop charging")
    yield Expect("StopTransaction", stop_transaction(), PERSON_WAIT)
    yield from steps.unplug(ctx)
    if steps.last_status(ctx, connector) != "Available":
        yield wait_status(connector, "Available", within=PERSON_WAIT)
    yield Note("Then a session that starts from the cache")
    yield from steps.plug(ctx)
    yield wait_status(connector, "Preparing", within=PERSON_WAIT)
    yield from steps.present_card(ctx, "Present the same card again")
    first = yield Expect(
        "StartTransaction from the cache",
        lambda seen: start_transaction(connector)(seen) or charger_call("Authorize")(seen),
        PERSON_WAIT,
    )
    if first.action == "Authorize":
        raise CheckFailed(
            "expected StartTransaction without Authorize (the card is in the authorization "
            "cache, LocalPreAuthorize is true); got Authorize first"
        )


def tc_061(ctx: Context) -> Script:
    answer = yield Call("ClearCache", {})
    expect_status(answer, "Accepted", what="ClearCache")


def tc_023(ctx: Context) -> Script:
    connector = ctx.connector
    yield SetRule(
        "Authorize",
        {"mode": "custom", "payload": {"idTagInfo": {"status": "Invalid"}}},
        title="Answer Authorize: Invalid",
    )
    yield from steps.plug(ctx)
    yield wait_status(connector, "Preparing", within=PERSON_WAIT)
    yield from steps.present_card(ctx)
    yield Expect("Authorize (answered Invalid)", charger_call("Authorize"), PERSON_WAIT)
    yield Absent("StartTransaction for the Invalid idTag", start_transaction(connector), 5.0)


# Remote start and stop


def tc_010(ctx: Context) -> Script:
    yield from steps.start_remotely(ctx)


def tc_011_1(ctx: Context) -> Script:
    connector = ctx.connector
    key = "AuthorizeRemoteTxRequests"
    if key in ctx.config and not ctx.readonly.get(key) and ctx.config[key] != "true":
        yield from steps.change_key(ctx, key, "true")
    authorize = ctx.config.get(key)
    answer = yield Call("RemoteStartTransaction", {"connectorId": connector, "idTag": ctx.id_tag})
    expect_status(answer, "Accepted", what="RemoteStartTransaction")
    yield from steps.plug(ctx)
    start = yield from steps.expect_started(ctx, connector, id_tag=ctx.id_tag)
    authorized = steps.earlier(ctx, start, charger_call("Authorize", idTag=ctx.id_tag))
    if authorize == "true" and not authorized:
        raise CheckFailed(
            f"expected Authorize of {ctx.id_tag} before StartTransaction ({key} is true); "
            "got StartTransaction without one"
        )
    if authorize == "false" and authorized:
        raise CheckFailed(f"expected no Authorize ({key} is false); got {describe(authorized[0])}")


def tc_011_2(ctx: Context) -> Script:
    connector = ctx.connector
    yield from steps.change_key(ctx, "ConnectionTimeOut", str(CONNECTION_TIMEOUT))
    answer = yield Call("RemoteStartTransaction", {"connectorId": connector, "idTag": ctx.id_tag})
    expect_status(answer, "Accepted", what="RemoteStartTransaction")
    yield wait_status(connector, "Preparing", within=PERSON_WAIT)
    yield Absent(
        f"StatusNotification Available before ConnectionTimeOut ({CONNECTION_TIMEOUT} s)",
        status(connector, "Available"),
        CONNECTION_TIMEOUT / 2,
    )
    yield wait_status(connector, "Available", within=CONNECTION_TIMEOUT + PERSON_WAIT)
    _no_start(ctx, "no cable was plugged in")


def tc_012(ctx: Context) -> Script:
    connector = ctx.connector
    _, number = yield from steps.start_remotely(ctx)
    mark = len(ctx.log)
    answer = yield Call("RemoteStopTransaction", {"transactionId": number})
    expect_status(answer, "Accepted", what="RemoteStopTransaction")
    stop = yield Expect(
        f"StopTransaction of transaction {number}",
        stop_transaction(transaction_id=number),
        PERSON_WAIT,
    )
    steps.expect_reason(stop, "Remote")
    if not steps.since(ctx, mark, status(connector, "Finishing")):
        yield wait_status(connector, "Finishing", within=PERSON_WAIT)


def tc_026(ctx: Context) -> Script:
    yield from steps.start_remotely(ctx)
    answer = yield Call(
        "RemoteStartTransaction", {"connectorId": ctx.connector, "idTag": ctx.id_tag}
    )
    expect_status(answer, "Rejected", what="RemoteStartTransaction on a charging connector")


def tc_027(ctx: Context) -> Script:
    answer = yield Call(
        "RemoteStartTransaction",
        {"connectorId": 0, "idTag": ctx.id_tag},
        title="Send RemoteStartTransaction for connectorId 0",
    )
    if answer.outcome == "error":
        yield Note(f"answered {answer.describe()}, which the specification allows")
    else:
        expect_status(answer, "Rejected", what="RemoteStartTransaction on connectorId 0")
    yield Absent("StartTransaction", charger_call("StartTransaction"), 3.0)


def tc_028(ctx: Context) -> Script:
    answer = yield Call(
        "RemoteStopTransaction",
        {"transactionId": UNKNOWN_TRANSACTION},
        title=f"Send RemoteStopTransaction of transaction {UNKNOWN_TRANSACTION}, unknown",
    )
    expect_status(answer, "Rejected", what="RemoteStopTransaction of an unknown transaction")


# Reset


def _reset_idle(kind: str) -> Callable[[Context], Script]:
    def script(ctx: Context) -> Script:
        yield from _make_inoperative(ctx)
        answer = yield Call("Reset", {"type": kind}, title=f"Send Reset {kind}")
        expect_status(answer, "Accepted", what=f"Reset {kind}")
        yield from _still_unavailable(ctx, f"{kind.lower()} reset")

    return script


def _reset_charging(kind: str) -> Callable[[Context], Script]:
    def script(ctx: Context) -> Script:
        _, number = yield from steps.start_remotely(ctx)
        answer = yield Call("Reset", {"type": kind}, title=f"Send Reset {kind}")
        expect_status(answer, "Accepted", what=f"Reset {kind}")
        stop, _ = yield ExpectAll(
            (
                (
                    f"StopTransaction of transaction {number}",
                    stop_transaction(transaction_id=number),
                ),
                ("BootNotification after the reset", charger_call("BootNotification")),
            ),
            within=BOOT_WAIT,
        )
        steps.expect_reason(stop, f"{kind}Reset")

    return script


# Unlock


def tc_017_1(ctx: Context) -> Script:
    answer = yield Call("UnlockConnector", {"connectorId": ctx.connector})
    if answer.status == "NotSupported":
        yield Note("NotSupported: the charger has a fixed cable")
        return
    expect_status(answer, "Unlocked", "NotSupported", what="UnlockConnector")


def tc_018_1(ctx: Context) -> Script:
    _, number = yield from steps.start_remotely(ctx)
    answer = yield Call("UnlockConnector", {"connectorId": ctx.connector})
    expect_status(answer, "Unlocked", what="UnlockConnector during a transaction")
    stop = yield Expect(
        f"StopTransaction of transaction {number}",
        stop_transaction(transaction_id=number),
        PERSON_WAIT,
    )
    steps.expect_reason(stop, "UnlockCommand")


def tc_031(ctx: Context) -> Script:
    answer = yield Call(
        "UnlockConnector",
        {"connectorId": ctx.connectors + 1},
        title=f"Send UnlockConnector for connector {ctx.connectors + 1}, which does not exist",
    )
    expect_status(answer, "NotSupported", what=f"UnlockConnector of connector {ctx.connectors + 1}")


# Configuration


def tc_019(ctx: Context) -> Script:
    answer = yield Call("GetConfiguration", {})
    if answer.outcome != "result":
        raise CheckFailed(f"GetConfiguration: expected its keys; got {answer.describe()}")
    keys = _configuration(answer)
    missing = [key for key, (required, _) in CORE_KEYS.items() if required and key not in keys]
    if missing:
        raise CheckFailed(f"GetConfiguration: Core keys missing: {', '.join(missing)}")
    wrong = [
        f"{key} should be {'read-only' if readonly else 'writable'}"
        for key, (_, readonly) in CORE_KEYS.items()
        if key in keys and readonly is not None and (keys[key].get("readonly") is True) != readonly
    ]
    if wrong:
        raise CheckFailed(f"GetConfiguration readonly flags: {'; '.join(wrong)}")
    unknown = "OcpplabNoSuchKey"
    named = yield Call("GetConfiguration", {"key": ["HeartbeatInterval", unknown]})
    payload = named.payload if isinstance(named.payload, dict) else {}
    listed = _configuration(named)
    if named.outcome != "result" or set(listed) != {"HeartbeatInterval"}:
        raise CheckFailed(
            f"GetConfiguration of HeartbeatInterval: expected that key only; got "
            f"{', '.join(sorted(listed)) or named.describe()}"
        )
    if unknown not in (payload.get("unknownKey") or []):
        raise CheckFailed(f"GetConfiguration: expected {unknown} in unknownKey; got none")


def tc_021(ctx: Context) -> Script:
    key = "MeterValueSampleInterval"
    if key not in ctx.config:
        raise CheckFailed(f"the charger has no {key} key (a required Core key)")
    value = "7" if ctx.config.get(key) != "7" else "8"
    steps.remember_key(ctx, key)
    answer = yield Call(
        "ChangeConfiguration", {"key": key, "value": value}, title=f"Set {key} to {value}"
    )
    expect_status(answer, "Accepted", what=f"ChangeConfiguration {key} = {value}")
    read = yield Call("GetConfiguration", {"key": [key]}, title=f"Read {key} back")
    got = _configuration(read).get(key, {}).get("value")
    if got != value:
        raise CheckFailed(f"{key} read back: expected {value}; got {got}")
    ctx.config[key] = value


def tc_040_1(ctx: Context) -> Script:
    answer = yield Call(
        "ChangeConfiguration",
        {"key": "OcpplabNoSuchKey", "value": "1"},
        title="Change OcpplabNoSuchKey, a key no charger has",
    )
    expect_status(answer, "NotSupported", what="ChangeConfiguration of an unknown key")


def tc_040_2(ctx: Context) -> Script:
    key = "MeterValueSampleInterval"
    steps.remember_key(ctx, key)  # restored even if the charger takes the value
    answer = yield Call(
        "ChangeConfiguration", {"key": key, "value": "-1"}, title=f"Set {key} to -1"
    )
    if answer.outcome == "error":
        yield Note(f"answered {answer.describe()}, which the specification allows")
        return
    expect_status(answer, "Rejected", what=f"ChangeConfiguration {key} = -1")


# Meter values


def tc_070(ctx: Context) -> Script:
    connector = ctx.connector
    measurand = "Energy.Active.Import.Register"
    yield from steps.change_key(ctx, "MeterValueSampleInterval", str(SAMPLE_INTERVAL))
    yield from steps.change_key(ctx, "MeterValuesSampledData", measurand)
    _, number = yield from steps.start_remotely(ctx)
    periodic = steps.meter_values(connector, "Sample.Periodic")
    for count in (1, 2):
        seen = yield Expect(
            f"sampled MeterValues {count} (every {SAMPLE_INTERVAL} s)",
            periodic,
            SAMPLE_INTERVAL + 10,
        )
        if seen.payload.get("transactionId") != number:
            raise CheckFailed(
                f"MeterValues transactionId: expected {number}; "
                f"got {seen.payload.get('transactionId')}"
            )
        if measurand not in steps.sample_measurands(seen):
            got = ", ".join(sorted(steps.sample_measurands(seen)))
            raise CheckFailed(f"MeterValues measurands: expected {measurand}; got {got}")
        if count == 1:
            yield Absent(
                f"sampled MeterValues sooner than every {SAMPLE_INTERVAL} s",
                periodic,
                SAMPLE_INTERVAL / 2,
            )


def tc_071(ctx: Context) -> Script:
    yield from steps.change_key(ctx, "ClockAlignedDataInterval", str(ALIGNED_INTERVAL))
    yield from steps.change_key(ctx, "MeterValuesAlignedData", "Energy.Active.Import.Register")
    for count in (1, 2):
        seen = yield Expect(
            f"clock-aligned MeterValues {count} (every {ALIGNED_INTERVAL} s)",
            steps.meter_values(),
            ALIGNED_INTERVAL + 10,
        )
        contexts = steps.sample_contexts(seen)
        if "Sample.Clock" not in contexts:
            got = ", ".join(sorted(contexts)) or "none"
            raise CheckFailed(f"MeterValues context: expected Sample.Clock; got {got}")
        _aligned(seen)


def _aligned(seen: Seen) -> None:
    """The sample's timestamp is a multiple of the interval past midnight (section 9.1.2)."""
    values = seen.payload.get("meterValue")
    stamp = values[0].get("timestamp") if isinstance(values, list) and values else None
    try:
        moment = datetime.datetime.fromisoformat(str(stamp))
    except ValueError:
        raise CheckFailed(f"MeterValues timestamp: expected a time; got {stamp!r}") from None
    seconds = moment.hour * 3600 + moment.minute * 60 + moment.second + moment.microsecond / 1e6
    off = seconds % ALIGNED_INTERVAL
    if min(off, ALIGNED_INTERVAL - off) > 1.0:
        raise CheckFailed(
            f"clock-aligned MeterValues at {stamp}: expected a multiple of "
            f"{ALIGNED_INTERVAL} s past midnight"
        )


# Power loss


def tc_032_1(ctx: Context) -> Script:
    _, number = yield from steps.start_remotely(ctx)
    yield from steps.power_cycle(ctx)
    _, stop = yield ExpectAll(
        (
            ("BootNotification after the power cut", charger_call("BootNotification")),
            (f"StopTransaction of transaction {number}", stop_transaction(transaction_id=number)),
        ),
        within=BOOT_WAIT,
    )
    steps.expect_reason(stop, "PowerLoss")


def tc_034(ctx: Context) -> Script:
    yield from _make_inoperative(ctx)
    yield from steps.power_cycle(ctx)
    yield from _still_unavailable(ctx, "power cut")


# Offline


def _event(kind: str) -> Callable[[Seen], bool]:
    return lambda seen: seen.dir == "event" and seen.type == kind


def _sampled_at(seen: Seen) -> datetime.datetime:
    values = seen.payload.get("meterValue")
    stamp = values[0].get("timestamp") if isinstance(values, list) and values else None
    try:
        moment = datetime.datetime.fromisoformat(str(stamp))
    except ValueError:
        raise CheckFailed(f"MeterValues timestamp: expected a time; got {stamp!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)


def tc_036(ctx: Context) -> Script:
    """The samples taken while offline are sent after the reconnect, in order (section 4.7:
    transaction-related messages are queued)."""
    connector = ctx.connector
    yield from steps.change_key(ctx, "MeterValueSampleInterval", str(OFFLINE_INTERVAL))
    _, number = yield from steps.start_remotely(ctx)
    periodic = steps.meter_values(connector, "Sample.Periodic")
    last = yield Expect("sampled MeterValues before the cut", periodic, OFFLINE_INTERVAL + 10)
    yield Cut(CUT_SECONDS)
    yield Expect("the charger disconnected", _event("disconnected"), PERSON_WAIT)
    yield Expect("the charger connected again", _event("connected"), CUT_SECONDS + BOOT_WAIT)
    mark = len(ctx.log)
    first = yield Expect("the MeterValues sampled while offline", periodic, PERSON_WAIT)
    gap = (_sampled_at(first) - _sampled_at(last)).total_seconds()
    if gap > CUT_SECONDS / 2 + OFFLINE_INTERVAL:
        raise CheckFailed(
            f"the first MeterValues after the reconnect was sampled {gap:.0f} s after the last "
            f"one before the cut; expected those sampled while offline (every "
            f"{OFFLINE_INTERVAL} s) first"
        )
    yield Wait(OFFLINE_INTERVAL, "for the rest of the queue")
    queued = steps.since(ctx, mark, periodic)
    times = [_sampled_at(seen) for seen in queued]
    if any(later < earlier for earlier, later in itertools.pairwise(times)):
        raise CheckFailed("MeterValues after the reconnect: expected them in the order sampled")
    others = [seen for seen in queued if seen.payload.get("transactionId") != number]
    if others:
        raise CheckFailed(
            f"MeterValues transactionId: expected {number}; got "
            f"{others[0].payload.get('transactionId')}"
        )


def _offline(ctx: Context) -> Script:
    yield Cut(PERSON_CUT)
    yield Expect("the charger disconnected", _event("disconnected"), PERSON_WAIT)


def _online(ctx: Context) -> Script:
    yield Expect("the charger connected again", _event("connected"), PERSON_CUT + BOOT_WAIT)


def tc_037_1(ctx: Context) -> Script:
    connector = ctx.connector
    yield from steps.change_key(ctx, "AllowOfflineTxForUnknownId", "true")
    yield from _offline(ctx)
    yield from steps.plug(ctx)
    yield from steps.present_card(ctx, "Quickly, while the charger is offline: present your card")
    yield from _online(ctx)
    refused = status(connector, "Preparing", *steps.NOT_STARTED)
    start = yield Expect(
        "the StartTransaction of the transaction started offline",
        lambda seen: start_transaction(connector)(seen) or refused(seen),
        PERSON_WAIT,
    )
    if start.action != "StartTransaction":
        raise CheckFailed(
            "expected the StartTransaction of the transaction started offline; "
            f"got {describe(start)}"
        )
    yield from steps.transaction_of(ctx, start)


def tc_038(ctx: Context) -> Script:
    connector = ctx.connector
    if ctx.config.get("StopTransactionOnEVSideDisconnect") != "true":
        yield from steps.change_key(ctx, "StopTransactionOnEVSideDisconnect", "true")
    _, number = yield from steps.start_remotely(ctx)
    yield from _offline(ctx)
    yield from steps.unplug(ctx)
    yield from _online(ctx)
    queued = stop_transaction(transaction_id=number)
    charging = status(connector, *steps.STARTED)
    stop = yield Expect(
        f"the StopTransaction of transaction {number}, stopped offline",
        lambda seen: queued(seen) or charging(seen),
        PERSON_WAIT,
    )
    if stop.action != "StopTransaction":
        raise CheckFailed(
            f"expected the StopTransaction of transaction {number} (unplugged while offline); "
            f"got {describe(stop)}"
        )
    steps.expect_reason(stop, "EVDisconnected")


def tc_039(ctx: Context) -> Script:
    connector = ctx.connector
    yield from steps.change_key(ctx, "AllowOfflineTxForUnknownId", "true")
    yield from _offline(ctx)
    yield from steps.plug(ctx)
    yield from steps.present_card(ctx, "Quickly, while the charger is offline: present your card")
    yield from steps.present_card(ctx, "Present the same card again to stop charging")
    yield from _online(ctx)
    start = yield Expect(
        "the StartTransaction made offline", start_transaction(connector), PERSON_WAIT
    )
    number = yield from steps.transaction_of(ctx, start)
    stop = yield Expect("the StopTransaction made offline", stop_transaction(), PERSON_WAIT)
    if stop.payload.get("transactionId") != number:
        raise CheckFailed(
            f"StopTransaction transactionId: expected {number} (the answer to its "
            f"StartTransaction); got {stop.payload.get('transactionId')}"
        )


# Data transfer


def tc_062(ctx: Context) -> Script:
    answer = yield Call(
        "DataTransfer", {"vendorId": "org.ocpplab.unknown-vendor", "messageId": "Check"}
    )
    expect_status(answer, "UnknownVendorId", "Rejected", what="DataTransfer to an unknown vendor")


def _core(
    id: str,
    title: str,
    purpose: str,
    script: Callable[[Context], Script],
    person: tuple[str, ...] = (),
    preconditions: str = "Booted Accepted, idle",
) -> Check:
    return Check(id, title, purpose, "Core", script, preconditions, person)


CARD = ("plug", "present_card")
CORE_CHECKS: tuple[Check, ...] = (
    _core(
        "TC_001_CS",
        "Cold boot, Rejected then Accepted",
        "A Rejected boot waits its interval; Accepted: every connector's status, heartbeats",
        tc_001,
        ("power_cycle",),
    ),
    _core(
        "TC_002_CS",
        "Cold boot, Pending",
        "While Pending, GetConfiguration and ChangeConfiguration work; then Accepted",
        tc_002,
        ("power_cycle",),
    ),
    _core(
        "TC_003_CS",
        "Start: plug in first, then the card",
        "Preparing, Authorize, StartTransaction and Charging",
        tc_003,
        CARD,
    ),
    _core(
        "TC_004_1_CS",
        "Start: the card first, then plug in",
        "Authorize, then after the plug StartTransaction and Charging",
        tc_004_1,
        ("present_card", "plug"),
    ),
    _core(
        "TC_004_2_CS",
        "The card, never plugged in",
        f"Back to Available after ConnectionTimeOut (set to {CONNECTION_TIMEOUT} s)",
        tc_004_2,
        ("present_card",),
    ),
    _core(
        "TC_068_CS",
        "Stop with the same card",
        "The card that started a transaction stops it: StopTransaction reason Local",
        tc_068,
        (*CARD, "present_card"),
    ),
    _core(
        "TC_069_CS",
        "Stop with a card of the same parentIdTag",
        "Another card of the same group stops the transaction after its Authorize",
        tc_069,
        (*CARD, "present_card"),
        "Booted Accepted, idle; a second card",
    ),
    _core(
        "TC_005_1_CS",
        "The EV is unplugged",
        "StopTransaction reason EVDisconnected, then Available",
        tc_005_1,
        (*CARD, "unplug"),
    ),
    _core(
        "TC_007_CS",
        "Start from the authorization cache",
        "A card in the cache starts a transaction without an Authorize (LocalPreAuthorize)",
        tc_007,
        (*CARD, "present_card", "unplug", *CARD),
    ),
    _core(
        "TC_061_CS",
        "Clear the authorization cache",
        "ClearCache is answered Accepted",
        tc_061,
    ),
    _core(
        "TC_023_CS",
        "An Invalid idTag starts nothing",
        "Authorize answered Invalid: no StartTransaction",
        tc_023,
        CARD,
    ),
    _core(
        "TC_010_CS",
        "Remote start, cable plugged in first",
        "RemoteStartTransaction Accepted: StartTransaction and Charging",
        tc_010,
        ("plug",),
    ),
    _core(
        "TC_011_1_CS",
        "Remote start first, then plug in",
        "AuthorizeRemoteTxRequests honoured: Authorize before StartTransaction when true",
        tc_011_1,
        ("plug",),
    ),
    _core(
        "TC_011_2_CS",
        "Remote start, never plugged in",
        f"Back to Available after ConnectionTimeOut (set to {CONNECTION_TIMEOUT} s)",
        tc_011_2,
    ),
    _core(
        "TC_012_CS",
        "Remote stop",
        "RemoteStopTransaction Accepted: StopTransaction reason Remote, Finishing",
        tc_012,
        ("plug",),
    ),
    _core(
        "TC_026_CS",
        "Remote start on a busy connector",
        "RemoteStartTransaction on a charging connector is Rejected",
        tc_026,
        ("plug",),
    ),
    _core(
        "TC_027_CS",
        "Remote start on connectorId 0",
        "RemoteStartTransaction for connectorId 0 is Rejected (or a CALLERROR)",
        tc_027,
    ),
    _core(
        "TC_028_CS",
        "Remote stop of an unknown transaction",
        "RemoteStopTransaction of a transaction that does not exist is Rejected",
        tc_028,
    ),
    _core(
        "TC_013_CS",
        "Hard reset when idle",
        "Reboots; an Inoperative connector stays Unavailable across the reset",
        _reset_idle("Hard"),
    ),
    _core(
        "TC_014_CS",
        "Soft reset when idle",
        "Reboots; an Inoperative connector stays Unavailable across the reset",
        _reset_idle("Soft"),
    ),
    _core(
        "TC_015_CS",
        "Hard reset during a transaction",
        "StopTransaction reason HardReset, then a reboot",
        _reset_charging("Hard"),
        ("plug",),
    ),
    _core(
        "TC_016_CS",
        "Soft reset during a transaction",
        "StopTransaction reason SoftReset, then a reboot",
        _reset_charging("Soft"),
        ("plug",),
    ),
    _core(
        "TC_017_1_CS",
        "Unlock the connector",
        "UnlockConnector is answered Unlocked (NotSupported for a fixed cable)",
        tc_017_1,
    ),
    _core(
        "TC_018_1_CS",
        "Unlock during a transaction",
        "The transaction stops first (reason UnlockCommand), then Unlocked",
        tc_018_1,
        ("plug",),
    ),
    _core(
        "TC_031_CS",
        "Unlock an unknown connector",
        "UnlockConnector of a connector that does not exist is NotSupported",
        tc_031,
    ),
    _core(
        "TC_019_CS",
        "Read the configuration",
        "GetConfiguration lists the Core keys with the right read-only flags; named keys",
        tc_019,
    ),
    _core(
        "TC_021_CS",
        "Change MeterValueSampleInterval",
        "ChangeConfiguration Accepted, and GetConfiguration reads the new value back",
        tc_021,
    ),
    _core(
        "TC_040_1_CS",
        "Change an unknown key",
        "ChangeConfiguration of a key the charger does not have is NotSupported",
        tc_040_1,
    ),
    _core(
        "TC_040_2_CS",
        "Change a key to an invalid value",
        "MeterValueSampleInterval = -1 is Rejected (or a CALLERROR)",
        tc_040_2,
    ),
    _core(
        "TC_070_CS",
        "Sampled meter values",
        f"MeterValues every MeterValueSampleInterval (set to {SAMPLE_INTERVAL} s), "
        "with the transaction and the configured measurand",
        tc_070,
        ("plug",),
    ),
    _core(
        "TC_071_CS",
        "Clock-aligned meter values",
        f"MeterValues Sample.Clock at every {ALIGNED_INTERVAL} s past midnight",
        tc_071,
    ),
    _core(
        "TC_032_1_CS",
        "Power cut during a transaction",
        "After the reboot, StopTransaction reason PowerLoss",
        tc_032_1,
        ("plug", "power_cycle"),
    ),
    _core(
        "TC_034_CS",
        "Power cut when Inoperative",
        "An Inoperative connector stays Unavailable across a power cut",
        tc_034,
        ("power_cycle",),
    ),
    _core(
        "TC_036_CS",
        "Connection lost during a transaction",
        f"MeterValues sampled while offline ({CUT_SECONDS} s) are sent after the reconnect, "
        "in order",
        tc_036,
        ("plug",),
        "Booted Accepted, idle; ocpplab cuts the connection",
    ),
    _core(
        "TC_037_1_CS",
        "Start while offline",
        "A transaction started while the connection is down is reported after it returns",
        tc_037_1,
        CARD,
        "Booted Accepted, idle; AllowOfflineTxForUnknownId; ocpplab cuts the connection",
    ),
    _core(
        "TC_038_CS",
        "Stop while offline",
        "A transaction stopped while the connection is down: its StopTransaction follows",
        tc_038,
        ("plug", "unplug"),
        "Booted Accepted, idle; ocpplab cuts the connection",
    ),
    _core(
        "TC_039_CS",
        "A whole transaction while offline",
        "Start and stop while the connection is down: both follow, with the id given",
        tc_039,
        (*CARD, "present_card"),
        "Booted Accepted, idle; AllowOfflineTxForUnknownId; ocpplab cuts the connection",
    ),
    _core(
        "TC_062_CS",
        "Data transfer to an unknown vendor",
        "DataTransfer with a vendorId the charger does not know: UnknownVendorId",
        tc_062,
    ),
)

CATALOGUE = Catalogue(
    checks=tuple(sorted(CORE_CHECKS + PROFILE_CHECKS, key=lambda check: check.id)),
    prepare=prepare,
    cleanup=cleanup,
)
