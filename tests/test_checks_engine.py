"""The check engine without sockets: scripted steps against literal frames and a literal clock."""

from __future__ import annotations

import datetime
from typing import Any

import jsonschema
import pytest

from ocpplab.core.checks import (
    REPORT_SCHEMA,
    Absent,
    Answer,
    ApplyRuleEffect,
    Ask,
    AskPersonEffect,
    Call,
    Catalogue,
    Check,
    CheckFailed,
    Context,
    Expect,
    ExpectAll,
    NotApplicable,
    RestoreRulesEffect,
    Run,
    Script,
    Seen,
    SendCallEffect,
    SetRule,
    Timeout,
    Wait,
    full_report,
)
from ocpplab.dialects.ocpp16.check_steps import status, wait_status


class LiteralClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def now(self) -> datetime.datetime:
        return datetime.datetime(2026, 12, 1, tzinfo=datetime.UTC) + datetime.timedelta(
            seconds=self.t
        )

    def monotonic(self) -> float:
        return self.t


def notification(connector: int, state: str, uid: str = "n1") -> Seen:
    payload = {"connectorId": connector, "status": state, "errorCode": "NoError"}
    return Seen("in", "CALL", "StatusNotification", uid, payload)


def nothing(ctx: Context) -> Script:
    yield from ()


def make_run(
    *scripts: Any,
    cleanup: Any = nothing,
    prepare: Any = nothing,
    profiles: tuple[str, ...] = ("Core",) * 0,
) -> tuple[Run, LiteralClock]:
    checks = tuple(
        Check(f"TC_{n:03d}_CS", f"check {n}", "purpose", profile, script)
        for n, (script, profile) in enumerate(
            ((s, "Core") if callable(s) else s for s in scripts), start=1
        )
    )
    clock = LiteralClock()
    run = Run(Catalogue(checks, prepare, cleanup), checks, Context(), clock, token_prefix="t")
    return run, clock


def only_call(run: Run) -> SendCallEffect:
    effects = run.take_effects()
    assert len(effects) == 1, effects
    (effect,) = effects
    assert isinstance(effect, SendCallEffect), effects
    return effect


def test_a_check_passes_when_its_steps_see_what_they_wait_for() -> None:
    def script(ctx: Context) -> Script:
        answer = yield Call("RemoteStartTransaction", {"idTag": "A", "connectorId": 1})
        if answer.status != "Accepted":
            raise CheckFailed(f"expected Accepted; got {answer.describe()}")
        yield wait_status(1, "Preparing")
        yield wait_status(1, "Charging")

    run, clock = make_run(script)
    run.start()
    call = only_call(run)
    assert call.action == "RemoteStartTransaction"
    assert call.token == "t-1"
    # Preparing comes before the call's answer: it still counts for the step after.
    run.frame(notification(1, "Preparing", "p"))
    run.answered(call.token, Answer("result", {"status": "Accepted"}))
    assert run.records[0].verdict == "running"
    clock.t += 3
    run.frame(notification(1, "Charging", "c"))
    assert run.finished
    assert run.records[0].verdict == "passed"
    steps = run.records[0].steps
    assert [step.state for step in steps] == ["passed", "passed", "passed"]
    assert steps[0].evidence == ["t-1"]
    assert steps[2].evidence == ["c"]


def test_a_timed_out_wait_fails_naming_what_came_instead() -> None:
    def script(ctx: Context) -> Script:
        yield wait_status(1, "Preparing", within=30)

    run, clock = make_run(script)
    run.start()
    run.frame(notification(1, "Available"))
    run.frame(notification(2, "Faulted"))  # another connector: not named
    assert run.next_deadline() == 1030.0
    clock.t = 1029.9
    run.tick()
    assert not run.finished
    clock.t = 1030.0
    run.tick()
    record = run.records[0]
    assert record.verdict == "failed"
    assert record.reason == (
        "expected StatusNotification Preparing on connector 1 within 30 s; "
        "got StatusNotification Available (connector 1)"
    )


def test_a_script_may_catch_a_timeout_and_go_on() -> None:
    def script(ctx: Context) -> Script:
        try:
            yield Expect("Heartbeat", lambda seen: seen.action == "Heartbeat", 5)
        except Timeout:
            yield wait_status(1, "Available", within=5)

    run, clock = make_run(script)
    run.start()
    clock.t += 5
    run.tick()
    run.frame(notification(1, "Available"))
    assert run.records[0].verdict == "passed"


def test_a_frame_from_before_the_last_action_does_not_count() -> None:
    def script(ctx: Context) -> Script:
        yield Wait(1)
        yield Call("Reset", {"type": "Soft"})
        yield wait_status(1, "Available", within=10)

    run, clock = make_run(script)
    run.start()
    run.frame(notification(1, "Available", "before"))  # during the Wait, before the Reset
    clock.t += 1
    run.tick()
    call = only_call(run)
    run.answered(call.token, Answer("result", {"status": "Accepted"}))
    assert run.records[0].verdict == "running"
    run.frame(notification(1, "Available", "after"))
    assert run.records[0].verdict == "passed"
    assert run.records[0].steps[-1].evidence == ["after"]


def test_expect_all_takes_frames_in_any_order() -> None:
    def script(ctx: Context) -> Script:
        frames = yield ExpectAll(
            (
                ("StartTransaction", lambda s: s.action == "StartTransaction"),
                ("Charging", status(1, "Charging")),
            ),
            within=10,
        )
        assert [frame.unique_id for frame in frames] == ["s", "c"]

    run, _ = make_run(script)
    run.start()
    run.frame(notification(1, "Charging", "c"))
    run.frame(Seen("in", "CALL", "StartTransaction", "s", {"connectorId": 1}))
    assert run.records[0].verdict == "passed", run.records[0].reason


def test_absent_passes_after_its_time_and_fails_at_the_first_match() -> None:
    def script(ctx: Context) -> Script:
        yield Absent("StartTransaction", lambda s: s.action == "StartTransaction", 10)

    run, clock = make_run(script)
    run.start()
    run.frame(notification(1, "Available"))
    clock.t += 10
    run.tick()
    assert run.records[0].verdict == "passed"

    run, clock = make_run(script)
    run.start()
    run.frame(Seen("in", "CALL", "StartTransaction", "s1", {"connectorId": 1}))
    record = run.records[0]
    assert record.verdict == "failed"
    assert record.reason == (
        "expected no StartTransaction for 10 s; got StartTransaction (connector 1)"
    )
    assert record.steps[0].evidence == ["s1"]


def test_rules_a_check_sets_are_restored_after_it_whatever_its_verdict() -> None:
    def script(ctx: Context) -> Script:
        yield SetRule("Authorize", {"mode": "custom", "payload": {}})
        raise CheckFailed("on purpose")

    def second(ctx: Context) -> Script:
        yield Wait(1)

    run, _clock = make_run(script, second)
    run.start()
    (apply,) = run.take_effects()
    assert isinstance(apply, ApplyRuleEffect)
    assert apply.action == "Authorize"
    run.done(apply.token)
    assert run.records[0].verdict == "failed"
    assert run.records[0].reason == "on purpose"
    (restore,) = run.take_effects()
    assert isinstance(restore, RestoreRulesEffect)
    assert run.records[1].verdict == "pending"  # the next check waits for the restore
    run.done(restore.token)
    assert run.records[1].verdict == "running"


def test_an_abort_restores_the_rules_and_ends_every_check_not_done() -> None:
    def script(ctx: Context) -> Script:
        yield SetRule("BootNotification", {"mode": "reject"})
        yield Wait(60)

    run, _clock = make_run(script, script)
    run.start()
    (apply,) = run.take_effects()
    run.done(apply.token)
    run.abort()
    assert run.state == "aborted"
    assert [record.verdict for record in run.records] == ["aborted", "aborted"]
    assert any(isinstance(effect, RestoreRulesEffect) for effect in run.take_effects())


def test_cleanup_runs_after_a_failed_check_and_its_failure_is_noted() -> None:
    cleaned: list[str] = []

    def script(ctx: Context) -> Script:
        yield Wait(1)
        raise CheckFailed("broken")

    def cleanup(ctx: Context) -> Script:
        cleaned.append("yes")
        answer = yield Call("RemoteStopTransaction", {"transactionId": 1})
        if answer.outcome != "result":
            raise CheckFailed("could not stop")

    run, clock = make_run(script, cleanup=cleanup)
    run.start()
    clock.t += 1
    run.tick()
    call = only_call(run)
    run.answered(call.token, Answer("timeout"))
    record = run.records[0]
    assert cleaned == ["yes"]
    assert record.verdict == "failed"
    assert record.reason == "broken"
    assert record.steps[-1].title == "Tidying up failed: could not stop"
    assert record.steps[-2].phase == "cleanup"


def test_a_person_who_cannot_act_makes_the_check_not_applicable() -> None:
    def script(ctx: Context) -> Script:
        yield Ask("Plug in the cable on connector 1 now", "plug")

    run, _ = make_run(script)
    run.start()
    (ask,) = run.take_effects()
    assert isinstance(ask, AskPersonEffect)
    assert ask.act == "plug"
    assert run.prompt is not None
    assert run.prompt["token"] == ask.token
    run.person("wrong-token", True)
    assert run.records[0].verdict == "running"
    run.person(ask.token, False)
    assert run.records[0].verdict == "not_applicable"
    assert run.records[0].reason == (
        "needs a person (Plug in the cable on connector 1 now); they could not"
    )


def test_a_profile_the_charger_lacks_makes_its_checks_not_applicable() -> None:
    def prepare(ctx: Context) -> Script:
        ctx.profiles = {"Core"}
        yield from ()

    def script(ctx: Context) -> Script:
        yield Wait(1)

    run, _ = make_run((script, "Reservation"), prepare=prepare)
    run.start()
    assert run.records[0].verdict == "not_applicable"
    assert "Reservation" in (run.records[0].reason or "")


def test_a_bug_in_a_script_fails_its_check_not_the_run() -> None:
    def broken(ctx: Context) -> Script:
        yield Wait(0)
        raise ZeroDivisionError("oops")

    def fine(ctx: Context) -> Script:
        yield from ()

    run, _clock = make_run(broken, fine)
    run.start()
    run.tick()
    assert run.records[0].verdict == "failed"
    assert "ZeroDivisionError" in (run.records[0].reason or "")
    assert run.records[1].verdict == "passed"
    assert run.finished


def test_not_applicable_raised_by_a_script() -> None:
    def script(ctx: Context) -> Script:
        yield from ()
        raise NotApplicable("fixed cable")

    run, _ = make_run(script)
    run.start()
    assert run.records[0].verdict == "not_applicable"
    assert run.records[0].reason == "fixed cable"


def test_the_report_matches_its_schema_at_every_stage() -> None:
    def script(ctx: Context) -> Script:
        yield Ask("Present a card", "present_card")
        yield wait_status(1, "Preparing", within=5)

    run, clock = make_run(script, script)
    charger = {"vendor": "V", "model": "M", "firmware": None, "serial": None}
    jsonschema.validate(full_report(run, "CP-1", charger), REPORT_SCHEMA)
    run.start()
    report = full_report(run, "CP-1", charger)
    jsonschema.validate(report, REPORT_SCHEMA)
    assert report["prompt"]["text"] == "Present a card"
    (ask,) = run.take_effects()
    run.person(ask.token, True)
    clock.t += 5
    run.tick()
    run.abort()
    report = full_report(run, "CP-1", charger)
    jsonschema.validate(report, REPORT_SCHEMA)
    assert report["summary"]["failed"] == 1
    assert report["summary"]["aborted"] == 1


def test_a_flood_of_frames_keeps_the_evidence_bounded() -> None:
    def script(ctx: Context) -> Script:
        yield wait_status(1, "Preparing", within=60)

    run, _ = make_run(script)
    run.start()
    for n in range(10_000):
        run.frame(Seen("in", "CALL", "Heartbeat", f"h{n}", {}))
    assert len(run.context.log) <= 2_000
    run.frame(notification(1, "Preparing"))
    assert run.records[0].verdict == "passed"


def test_select_names_unknown_ids() -> None:
    run, _ = make_run(nothing, nothing)
    catalogue = run.catalogue
    assert [c.id for c in catalogue.select(["tc_002_cs"])] == ["TC_002_CS"]
    with pytest.raises(KeyError, match="TC_999_CS"):
        catalogue.select(["TC_999_CS", "TC_001_CS"])
