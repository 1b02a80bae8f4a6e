"""The checks of the feature profiles beyond Core (ocpplab.dialects.ocpp16.checks_profiles).

Two tiers. Without sockets: the check engine (`Run`) drives the simulated charger's model
(`ChargerModel`, sans-I/O) on a literal clock, with a small stand-in central system answering
the model's calls, so every check and every fault is tried in simulated time. Over real
sockets: `run_simulated` runs the checks against a guided simulated charger on a real server.
"""

from __future__ import annotations

import asyncio
import datetime
import itertools
from collections.abc import Iterable
from typing import Any

import pytest

from ocpplab.core.checks import (
    Answer,
    ApplyRuleEffect,
    AskPersonEffect,
    Catalogue,
    Context,
    CutEffect,
    RestoreRulesEffect,
    Run,
    Seen,
    SendCallEffect,
)
from ocpplab.core.frames import Call, CallError, CallResult
from ocpplab.dialects.ocpp16.checks import CATALOGUE
from ocpplab.dialects.ocpp16.checks_profiles import PROFILE_CHECKS
from ocpplab.tools.charger_model import FAULTS, ChargerModel
from tests.checks_support import run_simulated
from tests.support import RunningServer

BY_ID = {check.id: check for check in PROFILE_CHECKS}
# The checks a fault is tried against: those of the same group (the feature profile; the
# local list checks together, TC_042_1_CS being Core only so that any charger can run it).
GROUPS = {
    check.id: "LocalAuthListManagement" if check.id == "TC_042_1_CS" else check.profile
    for check in PROFILE_CHECKS
}


def group_of(check_id: str) -> list[str]:
    return [other for other, group in GROUPS.items() if group == GROUPS[check_id]]


# What each fault's failure reason must say.
REASONS = {
    "TC_042_1_CS": "GetLocalListVersion: expected -1 (local list disabled) or CALLERROR "
    "NotSupported; got 0",
    "TC_042_2_CS": "GetLocalListVersion: expected 0 (the list is empty); got 1",
    "TC_043_CS": "SendLocalList (Differential, version 4): expected Accepted; got status Failed",
    "TC_043_2_CS": "SendLocalList (Differential, version 4): expected VersionMismatch; "
    "got status Accepted",
    "TC_008_CS": "got Authorize: the charger asked the central system",
    "TC_046_1_CS": "StartTransaction: expected reservationId 461; got none",
    "TC_047_CS": "the reservation did not end at its expiryDate: expected StatusNotification "
    "Available on connector 1 within 25 s",
    "TC_048_2_CS": "ReserveNow (connector 1): expected Occupied; got status Accepted",
    "TC_048_3_CS": "ReserveNow (connector 1): expected Unavailable; got status Accepted",
    "TC_049_CS": "ReserveNow (connector 0): expected Rejected; got status Accepted",
    "TC_051_CS": "expected StatusNotification Available on connector 1 within 15 s; got nothing",
    "TC_052_CS": "CancelReservation: expected Rejected; got status Accepted",
    "TC_044_1_CS": "expected a reboot (BootNotification) after Installing; "
    "got FirmwareStatusNotification Installed",
    "TC_045_1_CS": "DiagnosticsStatusNotification: expected Uploaded; got UploadFailed",
    "TC_054_CS": "expected the triggered DiagnosticsStatusNotification within 15 s",
    "TC_055_CS": "TriggerMessage: expected Rejected; got status Accepted",
    "TC_056_CS": "GetCompositeSchedule (TxDefaultProfile 9 A): expected limit 9 60 s in; got 32",
    "TC_057_CS": "GetCompositeSchedule (TxProfile 8 A): expected limit 8 30 s in; got 32",
    "TC_058_1_CS": "SetChargingProfile (TxProfile, no transaction): expected Rejected or "
    "CALLERROR PropertyConstraintViolation; got status Accepted",
    "TC_066_CS": "expected limit 10 250 s in; got 12",
    "TC_067_CS": "GetCompositeSchedule (after clearing stack level 2): expected the cleared "
    "limit 7 gone; got 7",
    "TC_072_CS": "expected limit 7 60 s in; got 6",
}


class Bench:
    """A booted simulated charger model, a stand-in central system and a literal clock."""

    def __init__(self, faults: Iterable[str] = (), connectors: int = 1) -> None:
        self.wall = datetime.datetime(2026, 12, 1, 12, 0, tzinfo=datetime.UTC)
        self.mono = 1000.0
        self.model = ChargerModel(
            "CP-BENCH",
            connectors=connectors,
            clock=lambda: self.wall,
            faults=frozenset(faults),
            guided=True,
        )
        self.rules: dict[str, dict[str, Any]] = {}
        self.transaction_ids = itertools.count(1)
        self.run: Run | None = None
        self.sent: list[Call] = []
        self.model.boot_accepted = True
        self.model.online = True  # as the I/O layer sets it while connected

    # The engine's Clock
    def now(self) -> datetime.datetime:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    def start(self, ids: list[str]) -> Run:
        """A run of the checks with the OCPP 1.6 catalogue's prepare and cleanup."""
        checks = tuple(BY_ID[check_id] for check_id in ids)
        catalogue = Catalogue(checks, prepare=CATALOGUE.prepare, cleanup=CATALOGUE.cleanup)
        self.run = Run(catalogue, checks, Context(id_tag="CARD-1"), self, token_prefix="t")
        self.run.start()
        return self.run

    def go(self, ids: list[str], *, limit: float = 3600.0) -> dict[str, dict[str, Any]]:
        """Run the checks to their end; each check's report by id."""
        run = self.start(ids)
        began = self.mono
        while not run.finished:
            assert self.mono - began < limit, "the run did not end"
            effects = run.take_effects()
            for effect in effects:
                self.carry_out(effect)
            if not effects:
                self.pass_time(0.5)
        return {check["id"]: check for check in run.report()["checks"]}

    def carry_out(self, effect: Any) -> None:
        run = self.run
        assert run is not None
        if isinstance(effect, SendCallEffect):
            call = Call(effect.token, effect.action, effect.payload)
            run.frame(Seen("out", "CALL", call.action, call.unique_id, call.payload, self.mono))
            reply = self.model.handle(call)
            if isinstance(reply, CallResult):
                seen = Seen("in", "CALLRESULT", call.action, call.unique_id, reply.payload)
                run.frame(seen)
                run.answered(effect.token, Answer("result", reply.payload, unique_id=effect.token))
            elif isinstance(reply, CallError):
                payload = {"errorCode": reply.code, "errorDescription": reply.description}
                run.frame(Seen("in", "CALLERROR", call.action, call.unique_id, payload))
                run.answered(effect.token, Answer("error", payload, reply.code, effect.token))
            self.deliver()
        elif isinstance(effect, ApplyRuleEffect):
            if effect.rule is None:
                self.rules.pop(effect.action, None)
            else:
                self.rules[effect.action] = effect.rule
            run.done(effect.token)
        elif isinstance(effect, RestoreRulesEffect):
            self.rules.clear()
            run.done(effect.token)
        elif isinstance(effect, AskPersonEffect):
            done = self.model.act(effect.act, effect.detail)
            self.deliver()
            run.person(effect.token, done)
        elif isinstance(effect, CutEffect):
            raise AssertionError("these checks never cut the connection")

    def pass_time(self, seconds: float) -> None:
        """Time goes by: the model's timed calls come due."""
        self.mono += seconds
        self.wall += datetime.timedelta(seconds=seconds)
        scheduled: list[tuple[float, Call]] = getattr(self.model, "scheduled", [])
        while scheduled and scheduled[0][0] <= self.wall.timestamp():
            self.model.pending.append(scheduled.pop(0)[1])
        self.model.due(self.mono)
        self.deliver()
        assert self.run is not None
        self.run.tick()

    def deliver(self) -> None:
        """The model sends what it owes (a reboot first boots again), answered at once."""
        model, run = self.model, self.run
        assert run is not None
        while True:
            while model.pending:
                self.send(model.pending.popleft())
            if model.reset_requested is None:
                return
            model.reset_requested = None
            model.boot_accepted = False
            self.send(model.boot())
            for connector_id in range(model.connectors + 1):
                self.send(model.status(connector_id))

    def send(self, call: Call) -> None:
        run = self.run
        assert run is not None
        self.sent.append(call)
        run.frame(Seen("in", "CALL", call.action, call.unique_id, call.payload, self.mono))
        answer = self.answer(call)
        run.frame(Seen("out", "CALLRESULT", call.action, call.unique_id, answer, self.mono))
        self.model.on_answer(call.unique_id, CallResult(call.unique_id, answer))

    def answer(self, call: Call) -> dict[str, Any]:
        rule = self.rules.get(call.action)
        if rule is not None and rule.get("mode") == "custom":
            payload: dict[str, Any] = rule["payload"]
            return payload
        now = self.wall.isoformat().replace("+00:00", "Z")
        accepted = {"status": "Accepted"}
        answers: dict[str, dict[str, Any]] = {
            "BootNotification": {"status": "Accepted", "currentTime": now, "interval": 300},
            "Heartbeat": {"currentTime": now},
            "Authorize": {"idTagInfo": accepted},
            "StartTransaction": {
                "transactionId": next(self.transaction_ids),
                "idTagInfo": accepted,
            },
        }
        return answers.get(call.action, {})


# Without sockets


def test_every_profile_fault_is_named_after_one_of_these_checks() -> None:
    profile_faults = {name for name in FAULTS if name in BY_ID}
    assert profile_faults == set(BY_ID) == set(REASONS)
    for check in PROFILE_CHECKS:
        assert check.title
        assert check.purpose
        assert check.preconditions
        assert set(check.person) <= {"plug", "unplug", "present_card", "power_cycle"}


def test_every_check_passes_against_the_simulated_charger() -> None:
    bench = Bench()
    reports = bench.go(list(BY_ID))
    failed = {i: r["reason"] for i, r in reports.items() if r["verdict"] != "passed"}
    assert not failed
    # What the checks made they undid: no list, reservation or charging profile is left.
    model = bench.model
    assert model.local_list_version == 1
    assert not model._local_list()
    assert not model._booked()
    assert not model.reservations
    assert not model._profiles()
    assert not model.inoperative


@pytest.mark.parametrize("fault", sorted(BY_ID))
def test_each_fault_fails_exactly_its_check_naming_what_was_wrong(fault: str) -> None:
    reports = Bench(faults=[fault]).go(group_of(fault))
    verdicts = {check_id: report["verdict"] for check_id, report in reports.items()}
    assert verdicts == {
        check_id: "failed" if check_id == fault else "passed" for check_id in group_of(fault)
    }, {check_id: report["reason"] for check_id, report in reports.items()}
    reason = reports[fault]["reason"]
    assert REASONS[fault] in reason, reason


# The model's smart charging, reservations and local list, directly


def _profile(
    number: int, purpose: str, level: int, periods: list[tuple[int, float]], **extra: Any
) -> dict[str, Any]:
    schedule: dict[str, Any] = {
        "chargingRateUnit": extra.pop("unit", "A"),
        "chargingSchedulePeriod": [{"startPeriod": at, "limit": limit} for at, limit in periods],
    }
    for key in ("duration", "startSchedule"):
        if key in extra:
            schedule[key] = extra.pop(key)
    return {
        "chargingProfileId": number,
        "stackLevel": level,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": extra.pop("kind", "Absolute"),
        "chargingSchedule": schedule,
        **extra,
    }


def _central(model: ChargerModel, action: str, payload: dict[str, Any]) -> dict[str, Any]:
    reply = model.handle(Call("cs-1", action, payload))
    assert isinstance(reply, CallResult), reply
    answer: dict[str, Any] = reply.payload
    return answer


def test_the_composite_schedule_follows_recurrence_validity_and_units() -> None:
    bench = Bench()
    model = bench.model
    yesterday = "2026-11-30T11:59:00Z"  # a minute after noon today, the day begins again
    daily = _profile(
        1,
        "TxDefaultProfile",
        0,
        [(0, 6.0), (120, 9.0)],
        kind="Recurring",
        recurrencyKind="Daily",
        startSchedule=yesterday,
        validTo="2026-12-01T12:05:00Z",
    )
    assert _central(model, "SetChargingProfile", {"connectorId": 1, "csChargingProfiles": daily})
    answer = _central(
        model, "GetCompositeSchedule", {"connectorId": 1, "duration": 600, "chargingRateUnit": "W"}
    )
    periods = answer["chargingSchedule"]["chargingSchedulePeriod"]
    # 6 A until 12:01, then 9 A until validTo at 12:05, then the charger's own maximum; in W
    # at 230 V on three phases.
    assert periods == [
        {"startPeriod": 0, "limit": 4140.0},
        {"startPeriod": 60, "limit": 6210.0},
        {"startPeriod": 300, "limit": 7360.0},
    ]


def test_profiles_replace_by_id_or_slot_and_are_bounded() -> None:
    model = Bench().model
    model.configuration["MaxChargingProfilesInstalled"].value = "2"

    def put(number: int, level: int) -> str:
        profile = _profile(number, "TxDefaultProfile", level, [(0, 6.0)])
        answer = _central(
            model, "SetChargingProfile", {"connectorId": 1, "csChargingProfiles": profile}
        )
        return str(answer["status"])

    assert [put(1, 0), put(2, 1), put(3, 1), put(2, 0)] == ["Accepted"] * 4
    assert sorted(model._profiles()) == [2, 3]  # 3 took 2's level, then 2 took 1's
    assert put(4, 1) == "Accepted"
    assert put(5, 2) == "Rejected"  # MaxChargingProfilesInstalled
    assert put(6, 11) == "Rejected"  # above ChargeProfileMaxStackLevel
    clear = _central(model, "ClearChargingProfile", {"chargingProfilePurpose": "TxProfile"})
    assert clear == {"status": "Unknown"}
    assert _central(model, "ClearChargingProfile", {}) == {"status": "Accepted"}
    assert not model._profiles()


def test_a_reservation_ends_when_its_expiry_is_sent_or_it_is_cancelled() -> None:
    bench = Bench()
    model = bench.model
    reserve = {
        "connectorId": 1,
        "expiryDate": "2026-12-01T12:00:10Z",
        "idTag": "CARD-1",
        "reservationId": 1,
    }
    assert _central(model, "ReserveNow", reserve) == {"status": "Accepted"}
    assert _central(model, "ReserveNow", {**reserve, "reservationId": 2}) == {"status": "Occupied"}
    assert _central(model, "ReserveNow", reserve) == {"status": "Accepted"}  # replaced
    assert [entry[1].payload["status"] for entry in model.scheduled] == ["Available"]
    assert model.scheduled[0][0] == bench.wall.timestamp() + 10
    model.pending.append(model.scheduled.pop(0)[1])  # sent at its time
    assert _central(model, "CancelReservation", {"reservationId": 1}) == {"status": "Rejected"}
    assert _central(model, "ReserveNow", {**reserve, "reservationId": 3}) == {"status": "Accepted"}
    assert _central(model, "CancelReservation", {"reservationId": 3}) == {"status": "Accepted"}
    assert not model.scheduled, "a cancelled reservation's expiry is not sent"


def test_the_local_list_takes_full_and_differential_updates_within_its_bounds() -> None:
    model = Bench().model
    model.configuration["SendLocalListMaxLength"].value = "2"
    entry = {"idTag": "A", "idTagInfo": {"status": "Accepted"}}

    def send(version: int, update: str, *entries: dict[str, Any]) -> str:
        payload = {"listVersion": version, "updateType": update}
        answer = _central(model, "SendLocalList", {**payload, "localAuthorizationList": entries})
        return str(answer["status"])

    assert send(5, "Full", entry, {"idTag": "B", "idTagInfo": {"status": "Blocked"}}) == "Accepted"
    assert send(6, "Full", entry, entry, entry) == "Failed"  # more than SendLocalListMaxLength
    assert send(6, "Differential", {"idTag": "A"}) == "Accepted"
    assert sorted(model._local_list()) == ["B"]
    assert _central(model, "GetLocalListVersion", {}) == {"listVersion": 6}
    model.configuration["LocalPreAuthorize"].value = "true"
    assert model._listed("B") is None, "a Blocked entry lets nobody in"
    assert send(7, "Differential", entry) == "Accepted"
    assert model._listed("A") == {"status": "Accepted"}


# Over real sockets


async def run_checks(
    server: RunningServer, ids: list[str], faults: Iterable[str] = ()
) -> dict[str, dict[str, Any]]:
    """`run_simulated`: each check's report by id."""
    report = await run_simulated(server, ids, faults=faults, timeout=200)
    assert report["state"] == "finished", report
    return {check["id"]: check for check in report["checks"]}


@pytest.mark.timeout(240)
async def test_every_check_passes_over_real_sockets(server: RunningServer) -> None:
    reports = await run_checks(server, list(BY_ID))
    failed = {i: r["reason"] for i, r in reports.items() if r["verdict"] != "passed"}
    assert not failed
    for report in reports.values():
        evidence = [uid for step in report["steps"] for uid in step["evidence"]]
        assert evidence, f"{report['id']} links no frame as evidence"


@pytest.mark.timeout(240)
@pytest.mark.parametrize("group", sorted(set(GROUPS.values())))
async def test_each_fault_fails_its_check_over_real_sockets(
    server: RunningServer, group: str
) -> None:
    ids = [check_id for check_id, of in GROUPS.items() if of == group]
    runs = await asyncio.gather(*(run_checks(server, ids, [fault]) for fault in ids))
    for fault, reports in zip(ids, runs, strict=True):
        verdicts = {check_id: report["verdict"] for check_id, report in reports.items()}
        wanted = {check_id: "failed" if check_id == fault else "passed" for check_id in ids}
        assert verdicts == wanted, (fault, {i: r["reason"] for i, r in reports.items()})
        assert REASONS[fault] in reports[fault]["reason"], reports[fault]["reason"]
