"""Answer sequences (issue 13, item 5): "Rejected twice, then Accepted", "ignore the first".

The stepping is pure and tested exhaustively against the sequence written out call by
call. Then over real sockets, on both brokers (one in-process ocpplab with the memory
broker; two `python -m ocpplab` processes on a real Redis, the charger on one and the API
on the other): a charger is Rejected twice and then Accepted, a reset starts the sequence
over, and the position survives a reconnect (also to the other instance).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import itertools
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import redis
from ocpp.v16 import call

from ocpplab.broker.keys import sequences_key
from ocpplab.config import Settings
from ocpplab.core.dialect import AnswerContext
from ocpplab.core.errors import InvalidRule
from ocpplab.core.frames import Call, CallError, CallResult
from ocpplab.core.responder import (
    MAX_COUNT,
    MAX_STEPS,
    Reply,
    ResponderSettings,
    Rule,
    Sequence,
    Silence,
    Step,
    fill_placeholders,
    respond,
    rule_from_json,
)
from ocpplab.dialects.ocpp16 import OCPP16
from ocpplab.web.configure import sequence_where, summary
from tests.official_schemas import assert_official
from tests.support import REDIS_URL, ocpp_charger, page_socket, serve
from tests.test_redis_processes import Instance

NOW = AnswerContext(datetime.datetime(2026, 12, 1, tzinfo=datetime.UTC), 7)
BOOT = call.BootNotification(charge_point_model="M", charge_point_vendor="V")
X = "\N{MULTIPLICATION SIGN}"
REJECTED = {"status": "Rejected", "currentTime": "{now}", "interval": 10}
ACCEPTED = {"status": "Accepted", "currentTime": "{now}", "interval": 60}
REJECTED_TWICE = {
    "sequence": [
        {"mode": "custom", "payload": REJECTED, "count": 2},
        {"mode": "custom", "payload": ACCEPTED},
    ],
    "repeat": False,
}
IGNORE_FIRST = {"sequence": [{"mode": "ignore"}, {"mode": "default"}]}


def numbered(index: int) -> Rule:
    """A rule told apart by its delay: step `index`'s."""
    return Rule(delay=float(index))


def written_out(counts: tuple[int, ...], repeat: bool, calls: int) -> list[int]:
    """Which step answers each call, by writing the sequence out call by call."""
    once = [index for index, count in enumerate(counts) for _ in range(count)]
    return [once[n % len(once)] if repeat else once[min(n, len(once) - 1)] for n in range(calls)]


# The stepping, pure


@pytest.mark.parametrize("repeat", [False, True])
@pytest.mark.parametrize(
    "counts",
    [counts for length in (1, 2, 3) for counts in itertools.product((1, 2, 3, 4), repeat=length)],
)
def test_every_call_gets_the_step_written_out_for_it(counts: tuple[int, ...], repeat: bool) -> None:
    sequence = Sequence(tuple(Step(numbered(i), count) for i, count in enumerate(counts)), repeat)
    calls = 3 * sum(counts) + 2

    assert [sequence.step_index(n) for n in range(calls)] == written_out(counts, repeat, calls)
    assert [sequence.rule_at(n) for n in range(calls)] == [
        numbered(index) for index in written_out(counts, repeat, calls)
    ]


def test_the_longest_sequence_steps_right_at_its_far_end() -> None:
    counts = (MAX_COUNT,) * MAX_STEPS
    sequence = Sequence(tuple(Step(numbered(i), count) for i, count in enumerate(counts)), True)
    length = MAX_COUNT * MAX_STEPS

    assert sequence.length == length
    assert sequence.step_index(length - 1) == MAX_STEPS - 1
    assert sequence.step_index(length) == 0
    assert sequence.step_index(10**12 + MAX_COUNT) == 1  # a charger that never stops


def test_the_json_round_trips_with_defaults() -> None:
    sequence = Sequence.from_json(REJECTED_TWICE)

    assert sequence == Sequence(
        (Step(Rule("custom", REJECTED), 2), Step(Rule("custom", ACCEPTED), 1)), repeat=False
    )
    assert Sequence.from_json(sequence.to_json()) == sequence
    assert sequence.to_json()["sequence"][1]["count"] == 1
    assert Sequence.from_json({"sequence": [{}]}) == Sequence((Step(Rule()),))


def test_rule_from_json_tells_a_sequence_from_a_rule() -> None:
    assert isinstance(rule_from_json(IGNORE_FIRST), Sequence)
    assert rule_from_json({"mode": "ignore"}) == Rule("ignore")


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ({"sequence": [{}, {"mode": "nope"}]}, "step 2: mode must be one of"),
        ({"sequence": [{"mode": "custom"}]}, "step 1: mode custom needs a payload"),
        ({"sequence": [{"count": 0}]}, "step 1: count must be a whole number from 1 to 1000"),
        ({"sequence": [{"count": 1001}]}, "step 1: count must be"),
        ({"sequence": [{"count": True}]}, "step 1: count must be"),
        ({"sequence": [{"count": 1.5}]}, "step 1: count must be"),
        ({"sequence": [{"delay": -1}]}, "step 1: delay must be between"),
        ({"sequence": [{"what": 1}]}, "step 1: unknown field(s): what"),
        ({"sequence": [[]]}, "step 1: a step is a JSON object"),
        ({"sequence": []}, "sequence must be a list of 1 to 20 steps"),
        ({"sequence": [{}] * 21}, "sequence must be a list of 1 to 20 steps"),
        ({"sequence": {}}, "sequence must be a list"),
        ({"sequence": [{}], "repeat": "yes"}, "repeat must be true or false"),
        ({"sequence": [{}], "loop": True}, "unknown field(s): loop"),
    ],
)
def test_a_bad_sequence_is_refused_naming_the_step(data: Any, reason: str) -> None:
    with pytest.raises(InvalidRule) as raised:
        rule_from_json(data)
    assert reason in str(raised.value)


def test_every_bad_step_is_named_at_once() -> None:
    with pytest.raises(InvalidRule) as raised:
        Sequence.from_json({"sequence": [{"mode": "x"}, {}, {"count": 0}]})
    assert str(raised.value).startswith("step 1: mode must be")
    assert "; step 3: count must be" in str(raised.value)


def test_a_sequence_cannot_be_made_empty_or_overlong_in_code_either() -> None:
    with pytest.raises(InvalidRule):
        Sequence(())
    with pytest.raises(InvalidRule):
        Sequence((Step(Rule(), MAX_COUNT + 1),))


def test_settings_hold_sequences_and_answer_by_position() -> None:
    settings = ResponderSettings.from_json(
        {"rules": {"BootNotification": REJECTED_TWICE, "Heartbeat": {"mode": "ignore"}}}
    )

    assert isinstance(settings.configured("BootNotification"), Sequence)
    assert settings.sequence("Heartbeat") is None
    assert [settings.rule("BootNotification", n).payload for n in range(4)] == [
        REJECTED,
        REJECTED,
        ACCEPTED,
        ACCEPTED,
    ]
    assert settings.rule("Heartbeat", 5) == Rule("ignore")
    assert ResponderSettings.from_json(settings.to_json()) == settings
    assert settings.changed("BootNotification")
    assert not settings.changed("Authorize")


def test_respond_answers_with_the_step_at_the_position() -> None:
    settings = ResponderSettings({"BootNotification": Sequence.from_json(IGNORE_FIRST)})
    boot = Call("1", "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"})

    def at(position: int) -> Any:
        return respond(
            boot, settings, NOW, [], manual_timeout=60, dialect=OCPP16, position=position
        )

    assert isinstance(at(0), Silence)
    second = at(1)
    assert isinstance(second, Reply)
    assert isinstance(second.frame, CallResult)
    assert second.frame.payload["status"] == "Accepted"


@pytest.mark.parametrize("preset", OCPP16.presets, ids=lambda preset: preset.key)
def test_every_preset_step_is_a_valid_rule_with_a_valid_answer(preset: Any) -> None:
    rule = rule_from_json(dict(preset.rule))
    rules = [step.rule for step in rule.steps] if isinstance(rule, Sequence) else [rule]

    for step in rules:
        if step.payload is not None:
            assert preset.action is not None
            assert_official(preset.action, fill_placeholders(step.payload, NOW)[0], response=True)


def test_the_retry_presets_are_offered() -> None:
    def keys(action: str) -> list[str]:
        return [preset.key for preset in OCPP16.presets_for(action)]

    assert {"rejected-twice", "ignore-first"} <= set(keys("BootNotification"))
    assert "invalid-once" in keys("Authorize")
    assert keys("Heartbeat")[-1] == "answer-answer-error"
    repeated = rule_from_json(dict(OCPP16.presets_for("Heartbeat")[-1].rule))
    assert isinstance(repeated, Sequence)
    assert repeated.repeat
    heartbeat = Call("h", "Heartbeat", {})
    settings = ResponderSettings({"Heartbeat": repeated})
    frames = [
        respond(heartbeat, settings, NOW, [], manual_timeout=60, dialect=OCPP16, position=n)
        for n in range(4)
    ]
    assert [type(answer.frame) for answer in frames if isinstance(answer, Reply)] == [
        CallResult,
        CallResult,
        CallError,
        CallResult,
    ]


def test_the_summary_says_the_steps_and_where_the_sequence_is() -> None:
    sequence = Sequence.from_json(REJECTED_TWICE)

    assert summary(sequence) == f"Rejected {X}2 → Accepted"
    assert sequence_where(sequence, 0) == "at step 1 of 2 (call 1)"
    assert sequence_where(sequence, 2) == "at step 2 of 2 (call 3)"
    assert sequence_where(Rule(), 2) == ""
    repeated = Sequence.from_json(dict(OCPP16.presets_for("Heartbeat")[-1].rule))
    assert summary(repeated) == f"default {X}2 → CALLERROR InternalError · repeat"
    assert sequence_where(repeated, 3) == "at step 1 of 2 (call 4)"
    authorize = Sequence.from_json(dict(OCPP16.presets_for("Authorize")[1].rule))
    assert summary(authorize) == "Invalid → Accepted"


# Over real sockets, on both brokers


@dataclasses.dataclass
class Lab:
    """Where the charger connects (`charger`), where the API answers (`api`), and what the
    broker stores for an identity's sequences."""

    charger: str  # ws base URL
    other_charger: str  # another instance's (the same with the memory broker)
    api: str  # http base URL
    stored: Callable[[str], Awaitable[dict[str, int] | None]]

    def charger_url(self, identity: str, *, other: bool = False) -> str:
        return f"{self.other_charger if other else self.charger}/ocpp/{quote(identity, safe='')}"

    def rule_url(self, identity: str, action: str = "BootNotification") -> str:
        return f"{self.api}/api/chargers/{quote(identity, safe='')}/responses/{action}"


def redis_stored(url: str) -> Callable[[str], Awaitable[dict[str, int] | None]]:
    async def stored(identity: str) -> dict[str, int] | None:
        def read() -> Any:
            client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
            try:
                return client.get(sequences_key(identity))
            finally:
                client.close()

        text = await asyncio.to_thread(read)
        return json.loads(text) if text else None

    return stored


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def lab(request: pytest.FixtureRequest) -> AsyncIterator[Lab]:
    if request.param == "redis":
        a, b = request.getfixturevalue("pair")
        assert isinstance(a, Instance)
        yield Lab(a.ws, b.ws, b.http, redis_stored(REDIS_URL))
        return
    async with serve(Settings(call_timeout=2.0)) as server:
        broker = server.app.state.services.broker

        async def stored(identity: str) -> dict[str, int] | None:
            text = await broker.get(sequences_key(identity))
            return json.loads(text) if text else None

        yield Lab(server.ws, server.ws, server.http, stored)


@pytest.fixture
def identity() -> str:
    return f"CP-seq-{uuid.uuid4().hex[:10]}"


@contextlib.asynccontextmanager
async def api() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


async def boots(lab: Lab, identity: str, times: int, *, other: bool = False) -> list[str]:
    """The statuses `times` BootNotifications of one connection get."""
    async with ocpp_charger(lab.charger_url(identity, other=other), identity) as charger:
        return [(await charger.call(BOOT)).status for _ in range(times)]


async def stored_becomes(lab: Lab, identity: str, expected: dict[str, int] | None) -> None:
    """Positions reach the broker without making the answer wait: poll until they do."""
    async with asyncio.timeout(10):
        while True:
            if await lab.stored(identity) == expected:
                return
            await asyncio.sleep(0.05)


async def test_a_charger_is_rejected_twice_then_accepted_and_a_reset_starts_over(
    lab: Lab, identity: str
) -> None:
    async with api() as http:
        saved = await http.put(lab.rule_url(identity), json=REJECTED_TWICE)
        assert saved.status_code == 200, saved.text
        assert (await http.get(lab.rule_url(identity))).json() == Sequence.from_json(
            REJECTED_TWICE
        ).to_json()
        async with ocpp_charger(lab.charger_url(identity), identity) as charger:
            statuses = [(await charger.call(BOOT)).status for _ in range(4)]
            assert statuses == ["Rejected", "Rejected", "Accepted", "Accepted"]
            await stored_becomes(lab, identity, {"BootNotification": 4})

            restarted = await http.post(lab.rule_url(identity) + "/restart")
            assert (restarted.status_code, restarted.json()) == (200, {"position": 0})
            await stored_becomes(lab, identity, None)
            statuses = [(await charger.call(BOOT)).status for _ in range(3)]
            assert statuses == ["Rejected", "Rejected", "Accepted"]


async def test_the_position_survives_a_reconnect(lab: Lab, identity: str) -> None:
    """ "Ignore the first BootNotification": the charger reconnects, then is answered."""
    async with api() as http:
        await http.put(lab.rule_url(identity), json=IGNORE_FIRST)
    async with ocpp_charger(lab.charger_url(identity), identity) as charger:
        charger._response_timeout = 1.0
        with pytest.raises(asyncio.TimeoutError):
            await charger.call(BOOT)
    await stored_becomes(lab, identity, {"BootNotification": 1})

    assert await boots(lab, identity, 1, other=True) == ["Accepted"]  # another instance
    await stored_becomes(lab, identity, {"BootNotification": 2})


async def test_a_reset_while_the_charger_is_offline_applies_when_it_returns(
    lab: Lab, identity: str
) -> None:
    async with api() as http:
        await http.put(lab.rule_url(identity), json=REJECTED_TWICE)
        assert await boots(lab, identity, 3) == ["Rejected", "Rejected", "Accepted"]
        await stored_becomes(lab, identity, {"BootNotification": 3})

        restarted = await http.post(lab.rule_url(identity) + "/restart")
        assert restarted.status_code == 200

    assert await lab.stored(identity) is None
    assert await boots(lab, identity, 3, other=True) == ["Rejected", "Rejected", "Accepted"]


async def test_saving_a_rule_starts_its_sequence_over(lab: Lab, identity: str) -> None:
    async with api() as http:
        await http.put(lab.rule_url(identity), json=REJECTED_TWICE)
        async with ocpp_charger(lab.charger_url(identity), identity) as charger:
            assert [(await charger.call(BOOT)).status for _ in range(2)] == ["Rejected"] * 2
            await stored_becomes(lab, identity, {"BootNotification": 2})

            await http.put(lab.rule_url(identity), json=REJECTED_TWICE)  # saved again

            await stored_becomes(lab, identity, None)
            assert (await charger.call(BOOT)).status == "Rejected"


# The API and the Configure panel (memory broker)


@pytest.fixture
async def server() -> AsyncIterator[Any]:
    async with serve(Settings(call_timeout=2.0)) as running:
        yield running


def client(server: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=server.http, timeout=10)


async def test_the_api_checks_every_steps_payload_and_names_the_step(server: Any) -> None:
    broken = {
        "sequence": [
            {"mode": "custom", "payload": REJECTED},
            {"mode": "custom", "payload": {"status": "Maybe"}},
        ]
    }
    async with client(server) as http:
        refused = await http.put("/api/chargers/CP-1/responses/BootNotification", json=broken)
        assert refused.status_code == 422
        body = refused.json()
        assert "step 2" in body["error"]
        assert body["violations"]
        assert {v["step"] for v in body["violations"]} == {"2"}

        forced = await http.put(
            "/api/chargers/CP-1/responses/BootNotification?validate=false", json=broken
        )
        assert forced.status_code == 200
        assert forced.json()["sequence"][1]["payload"] == {"status": "Maybe"}

        bad = await http.put(
            "/api/chargers/CP-1/responses/BootNotification",
            json={"sequence": [{}, {"mode": "sometimes"}]},
        )
        assert bad.status_code == 422
        assert bad.json()["error"].startswith("step 2: mode must be one of")

        unknown = await http.post("/api/chargers/CP-1/responses/Reset/restart")
        assert unknown.status_code == 404


async def test_the_page_shows_where_the_sequence_is_and_resets_it(server: Any) -> None:
    async with client(server) as http:
        await http.put("/api/chargers/CP-1/responses/BootNotification", json=REJECTED_TWICE)
        async with (
            page_socket(server, "CP-1") as page,
            ocpp_charger(server.charger_url("CP-1"), "CP-1") as charger,
        ):
            await charger.call(BOOT)
            await charger.call(BOOT)
            fragment = await page.wait_for("at step 2 of 2 (call 3)")
            assert 'id="sequence-position-BootNotification"' in fragment

            html = (await http.get("/chargers/CP-1")).text
            assert f"Rejected {X}2 → Accepted" in html
            assert "at step 2 of 2 (call 3)" in html

            reset = await http.post("/chargers/CP-1/rules/BootNotification/restart")
            assert reset.status_code == 200
            assert "at step 1 of 2 (call 1)" in reset.text
            assert (await charger.call(BOOT)).status == "Rejected"
            await page.wait_for("at step 1 of 2 (call 2)")


async def test_a_page_of_an_offline_charger_hears_of_a_reset(server: Any) -> None:
    async with client(server) as http:
        await http.put("/api/chargers/CP-1/responses/BootNotification", json=REJECTED_TWICE)
        async with page_socket(server, "CP-1") as page:
            await http.post("/api/chargers/CP-1/responses/BootNotification/restart")
            await page.wait_for("at step 1 of 2 (call 1)")


async def test_the_form_saves_a_sequence_and_shows_every_problem_at_once(server: Any) -> None:
    broken = [
        {"mode": "custom", "payload": {"status": "Maybe"}},
        {"mode": "default", "count": 0},
        {"mode": "custom", "payload": {"status": "Nope", "interval": "x"}},
    ]
    async with client(server) as http:
        url = "/chargers/CP-1/rules/BootNotification"
        refused = await http.post(
            url, data={"source": "sequence", "sequence_json": json.dumps(broken)}
        )
        assert refused.status_code == 422
        assert "step 2: count must be" in refused.text  # the rule problems first

        broken[1]["count"] = 1
        refused = await http.post(
            url, data={"source": "sequence", "sequence_json": json.dumps(broken)}
        )
        assert refused.status_code == 422
        assert "step 1: " in refused.text
        assert "step 3: " in refused.text
        assert (
            'aria-invalid="true" aria-describedby="rf-BootNotification-sequence-json-error"'
            in refused.text
        )

        not_json = await http.post(url, data={"source": "sequence", "sequence_json": "[{"})
        assert not_json.status_code == 422
        assert "not valid JSON" in not_json.text

        saved = await http.post(
            url,
            data={"source": "sequence", "sequence_json": json.dumps(REJECTED_TWICE["sequence"])},
        )
        assert saved.status_code == 200
        assert (
            f"Saved: BootNotification is now answered with Rejected {X}2 → Accepted." in saved.text
        )
        rule = (await http.get("/api/chargers/CP-1/responses/BootNotification")).json()
        assert rule == Sequence.from_json(REJECTED_TWICE).to_json()


async def test_a_sequence_preset_is_one_click(server: Any) -> None:
    async with client(server) as http:
        saved = await http.post(
            "/chargers/CP-1/rules/BootNotification", data={"preset": "rejected-twice"}
        )
        assert saved.status_code == 200
        assert f"Rejected {X}2 → Accepted" in saved.text
        async with ocpp_charger(server.charger_url("CP-1"), "CP-1") as charger:
            statuses = [(await charger.call(BOOT)).status for _ in range(3)]
    assert statuses == ["Rejected", "Rejected", "Accepted"]
