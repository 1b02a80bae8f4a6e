"""The Core checks of the OCPP 1.6 catalogue against a simulated charger over real sockets.

Every Core check passes against a well-behaved guided charger, unattended (the charger does
the person's acts); and for every Core check there is a fault (`charger_model.FAULTS`) that
makes exactly that check fail, with a reason that names what was wrong, while the other
checks of its group pass. The faults of a group run at once, each on its own charger.
"""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import AsyncIterator, Iterable
from typing import Any

import pytest

from ocpplab.core.checks import (
    Answer,
    AskPersonEffect,
    Catalogue,
    Check,
    CheckFailed,
    Context,
    Run,
    Script,
    Seen,
    SendCallEffect,
    Wait,
)
from ocpplab.dialects.ocpp16 import OCPP16
from ocpplab.dialects.ocpp16.checks import CATALOGUE, CORE_CHECKS, cleanup, prepare
from ocpplab.tools.charger_model import FAULTS
from tests.checks_support import reasons, run_simulated, verdicts
from tests.support import RunningServer, serve

CORE_IDS = [check.id for check in CORE_CHECKS]

# Checks that share a subject; each fault runs against its check's group.
GROUPS: dict[str, list[str]] = {
    "boot": ["TC_001_CS", "TC_002_CS"],
    "local start": ["TC_003_CS", "TC_004_1_CS", "TC_004_2_CS", "TC_023_CS"],
    "local stop": ["TC_068_CS", "TC_069_CS", "TC_005_1_CS", "TC_007_CS"],
    "remote start": ["TC_010_CS", "TC_011_1_CS", "TC_011_2_CS", "TC_027_CS", "TC_028_CS"],
    "remote stop": ["TC_012_CS", "TC_026_CS", "TC_018_1_CS"],
    "reset": ["TC_013_CS", "TC_014_CS", "TC_015_CS", "TC_016_CS"],
    "unlock": ["TC_017_1_CS", "TC_031_CS", "TC_062_CS"],
    "configuration": ["TC_019_CS", "TC_021_CS", "TC_040_1_CS", "TC_040_2_CS", "TC_061_CS"],
    "meter values": ["TC_070_CS", "TC_071_CS"],
    "power": ["TC_032_1_CS", "TC_034_CS"],
    "offline queue": ["TC_036_CS", "TC_038_CS"],
    "offline transaction": ["TC_037_1_CS", "TC_039_CS"],
}

# What the failure of each check under its fault must say.
REASONS: dict[str, str] = {
    "TC_001_CS": "expected no call from the charger in the Rejected boot's interval",
    "TC_002_CS": "ChangeConfiguration while Pending: expected Accepted; got status Rejected",
    "TC_003_CS": "Charging on connector 1; got StatusNotification Available",
    "TC_004_1_CS": "Charging on connector 1; got StatusNotification Faulted",
    "TC_004_2_CS": "expected no StatusNotification Available before ConnectionTimeOut",
    "TC_068_CS": "StopTransaction reason: expected Local; got Other",
    "TC_069_CS": "expected StopTransaction within 30 s",
    "TC_005_1_CS": "StopTransaction reason: expected EVDisconnected; got Local",
    "TC_007_CS": "expected StartTransaction without Authorize",
    "TC_061_CS": "ClearCache: expected Accepted; got status Rejected",
    "TC_010_CS": "RemoteStartTransaction: expected Accepted; got status Rejected",
    "TC_011_1_CS": "expected Authorize of OCPPLAB-CARD before StartTransaction",
    "TC_011_2_CS": "expected no StatusNotification Available before ConnectionTimeOut",
    "TC_012_CS": "StopTransaction reason: expected Remote; got Local",
    "TC_026_CS": "on a charging connector: expected Rejected; got status Accepted",
    "TC_027_CS": "on connectorId 0: expected Rejected; got status Accepted",
    "TC_028_CS": "of an unknown transaction: expected Rejected; got status Accepted",
    "TC_023_CS": "expected no StartTransaction for the Invalid idTag",
    "TC_013_CS": "after the hard reset: expected Unavailable",
    "TC_014_CS": "after the soft reset: expected Unavailable",
    "TC_015_CS": "StopTransaction reason: expected HardReset; got Other",
    "TC_016_CS": "StopTransaction reason: expected SoftReset; got Reboot",
    "TC_017_1_CS": "UnlockConnector: expected Unlocked or NotSupported; got status UnlockFailed",
    "TC_018_1_CS": "StopTransaction reason: expected UnlockCommand; got Local",
    "TC_031_CS": "expected NotSupported; got status Unlocked",
    "TC_019_CS": "readonly flags: NumberOfConnectors should be read-only",
    "TC_021_CS": "MeterValueSampleInterval read back: expected 7; got 10",
    "TC_040_1_CS": "unknown key: expected NotSupported; got status Rejected",
    "TC_040_2_CS": "MeterValueSampleInterval = -1: expected Rejected; got status Accepted",
    "TC_070_CS": "MeterValues transactionId: expected",
    "TC_071_CS": "MeterValues context: expected Sample.Clock; got Sample.Periodic",
    "TC_032_1_CS": "StopTransaction reason: expected PowerLoss; got Other",
    "TC_034_CS": "after the power cut: expected Unavailable",
    "TC_062_CS": "expected UnknownVendorId or Rejected; got status Accepted",
    "TC_036_CS": "expected those sampled while offline (every 2 s) first",
    "TC_037_1_CS": "expected the StartTransaction of the transaction started offline; got "
    "StatusNotification Preparing",
    "TC_038_CS": "(unplugged while offline); got StatusNotification Charging",
    "TC_039_CS": "(the answer to its StartTransaction); got -1",
}


@pytest.fixture
async def server() -> AsyncIterator[RunningServer]:
    """ocpplab with its default settings (conftest's has a 2 s call timeout)."""
    assert OCPP16.checks is CATALOGUE
    async with serve() as running:
        yield running


async def run_checks(
    server: RunningServer, only: list[str], *, faults: Iterable[str] = (), connectors: int = 1
) -> dict[str, Any]:
    """Run checks against a fresh guided simulated charger that does the person's acts."""
    return await run_simulated(server, only, faults=faults, connectors=connectors, timeout=100)


def test_every_core_check_has_a_fault_and_a_group() -> None:
    grouped = [check_id for group in GROUPS.values() for check_id in group]
    assert sorted(grouped) == sorted(CORE_IDS)
    assert set(CORE_IDS) <= set(FAULTS)
    assert set(REASONS) == set(CORE_IDS)
    assert all(check.profile == "Core" for check in CORE_CHECKS)
    assert len(CORE_IDS) >= 30


async def test_every_core_check_passes_against_the_simulated_charger(
    server: RunningServer,
) -> None:
    # Three chargers at once: the offline checks (each cuts the connection for a while) on
    # two, the rest on the third.
    offline = GROUPS["offline queue"] + GROUPS["offline transaction"]
    rest = [check_id for check_id in CORE_IDS if check_id not in offline]
    parts = [GROUPS["offline queue"], GROUPS["offline transaction"], rest]
    reports = await asyncio.gather(*(run_checks(server, part) for part in parts))
    for report in reports:
        failed = {
            check["id"]: check["reason"]
            for check in report["checks"]
            if check["verdict"] != "passed"
        }
        assert failed == {}
        assert report["prepare"]["state"] == "passed"
        for check in report["checks"]:
            tidying = [step["title"] for step in check["steps"] if step["title"].startswith("Tidy")]
            assert tidying == [], check["id"]
    assert sorted(check["id"] for report in reports for check in report["checks"]) == sorted(
        CORE_IDS
    )


async def test_checks_of_a_charger_with_two_connectors(server: RunningServer) -> None:
    report = await run_checks(server, ["TC_002_CS", "TC_010_CS", "TC_031_CS"], connectors=2)
    assert set(verdicts(report).values()) == {"passed"}, reasons(report)
    boot = next(check for check in report["checks"] if check["id"] == "TC_002_CS")
    statuses = [step["detail"] for step in boot["steps"] if "connector 2" in step["title"]]
    assert statuses
    assert "(connector 2)" in statuses[0]


@pytest.mark.parametrize("group", sorted(GROUPS))
async def test_each_fault_fails_exactly_its_check(server: RunningServer, group: str) -> None:
    checks = GROUPS[group]
    reports = await asyncio.gather(
        *(run_checks(server, checks, faults=[check_id]) for check_id in checks)
    )
    for check_id, report in zip(checks, reports, strict=True):
        outcome = verdicts(report)
        assert outcome[check_id] == "failed", (check_id, reasons(report))
        reason = reasons(report)[check_id] or ""
        assert REASONS[check_id] in reason, (check_id, reason)
        others = {other: verdict for other, verdict in outcome.items() if other != check_id}
        assert set(others.values()) == {"passed"}, (check_id, reasons(report))


# prepare and cleanup on the pure engine, with literal frames


class LiteralClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def now(self) -> datetime.datetime:
        return datetime.datetime(2026, 12, 1, tzinfo=datetime.UTC) + datetime.timedelta(
            seconds=self.t
        )

    def monotonic(self) -> float:
        return self.t


def _one_call(run: Run) -> SendCallEffect:
    effects = run.take_effects()
    (effect,) = effects
    assert isinstance(effect, SendCallEffect), effects
    return effect


def _prepared(script: Any) -> tuple[Run, LiteralClock]:
    check = Check("TC_999_CS", "a check", "purpose", "Core", script)
    clock = LiteralClock()
    run = Run(Catalogue((check,), prepare, cleanup), [check], Context(), clock, token_prefix="t")
    run.start()
    read = _one_call(run)
    assert (read.action, read.payload) == ("GetConfiguration", {})
    keys = [
        {"key": "NumberOfConnectors", "readonly": True, "value": "2"},
        {"key": "SupportedFeatureProfiles", "readonly": True, "value": "Core, RemoteTrigger"},
        {"key": "MinimumStatusDuration", "readonly": False, "value": "3"},
        {"key": "ConnectionTimeOut", "readonly": False, "value": "60"},
    ]
    run.answered(read.token, Answer("result", {"configurationKey": keys}))
    change = _one_call(run)
    assert change.payload == {"key": "MinimumStatusDuration", "value": "0"}
    run.answered(change.token, Answer("result", {"status": "Accepted"}))
    return run, clock


def _frame(direction: str, kind: str, action: str, uid: str, payload: Any) -> Seen:
    return Seen(direction, kind, action, uid, payload)


def test_prepare_reads_the_charger_and_zeroes_minimum_status_duration() -> None:
    def script(ctx: Context) -> Script:
        yield from ()

    run, _ = _prepared(script)
    context = run.context
    assert context.connectors == 2
    assert context.profiles == {"Core", "RemoteTrigger"}
    assert context.readonly["NumberOfConnectors"] is True
    assert context.config["MinimumStatusDuration"] == "0"
    assert context.facts["restore_after_run"] == {"MinimumStatusDuration": "3"}
    assert run.records[0].verdict.value == "passed"


def test_prepare_fails_the_run_when_the_configuration_cannot_be_read() -> None:
    def script(ctx: Context) -> Script:
        yield from ()

    check = Check("TC_999_CS", "a check", "purpose", "Core", script)
    run = Run(Catalogue((check,), prepare, cleanup), [check], Context(), LiteralClock())
    run.start()
    read = _one_call(run)
    run.answered(read.token, Answer("error", error_code="NotImplemented"))
    assert run.records[0].verdict.value == "not_applicable"
    assert "GetConfiguration: expected its keys; got CALLERROR NotImplemented" in (
        run.records[0].reason or ""
    )


def test_cleanup_after_a_failed_check_stops_unplugs_and_restores() -> None:
    def broken(ctx: Context) -> Script:
        ctx.facts["changed_keys"] = {"ConnectionTimeOut": "60"}
        ctx.facts["plugged"] = {1}
        yield Wait(1.0)
        raise CheckFailed("broke half-way")

    run, clock = _prepared(broken)
    start = {"connectorId": 1, "idTag": "CARD", "meterStart": 0, "timestamp": "x"}
    run.frame(_frame("in", "CALL", "StartTransaction", "s1", start))
    answer = {"transactionId": 42, "idTagInfo": {"status": "Accepted"}}
    run.frame(_frame("out", "CALLRESULT", "StartTransaction", "s1", answer))
    run.frame(
        _frame("in", "CALL", "StatusNotification", "n1", {"connectorId": 1, "status": "Charging"})
    )
    clock.t += 1.0
    run.tick()
    stop = _one_call(run)
    assert (stop.action, stop.payload) == ("RemoteStopTransaction", {"transactionId": 42})
    run.answered(stop.token, Answer("result", {"status": "Accepted"}))
    assert run.take_effects() == []  # waiting for the StopTransaction
    stopped = {"transactionId": 42, "meterStop": 5, "timestamp": "x", "reason": "Remote"}
    run.frame(_frame("in", "CALL", "StopTransaction", "s2", stopped))
    run.frame(
        _frame("in", "CALL", "StatusNotification", "n2", {"connectorId": 1, "status": "Finishing"})
    )
    (ask,) = run.take_effects()
    assert isinstance(ask, AskPersonEffect)
    assert ask.act == "unplug"
    run.person(ask.token, True)
    restore = _one_call(run)
    assert restore.payload == {"key": "ConnectionTimeOut", "value": "60"}
    run.answered(restore.token, Answer("result", {"status": "Accepted"}))
    assert not run.finished  # waiting for Available
    run.frame(
        _frame("in", "CALL", "StatusNotification", "n3", {"connectorId": 1, "status": "Available"})
    )
    assert run.finished
    record = run.records[0]
    assert (record.verdict.value, record.reason) == ("failed", "broke half-way")
    assert [step.phase for step in record.steps].count("cleanup") == 5


def test_cleanup_leaves_an_idle_charger_alone() -> None:
    def passing(ctx: Context) -> Script:
        yield Wait(0.5)

    run, clock = _prepared(passing)
    clock.t += 1.0
    run.tick()
    assert run.finished
    assert run.take_effects() == []
