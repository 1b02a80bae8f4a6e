"""Building blocks for the OCPP 1.6 checks: frame matchers and common step sequences.

A matcher is a predicate on `ocpplab.core.checks.Seen`. Scripts combine them with the
engine's steps: `yield Expect("StatusNotification Preparing on connector 1",
status(1, "Preparing"))`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ocpplab.core.checks import (
    Answer,
    Ask,
    Call,
    CheckFailed,
    Context,
    Expect,
    Match,
    NotApplicable,
    Script,
    Seen,
    describe,
)


def charger_call(action: str, **fields: Any) -> Match:
    """A CALL from the charger of `action` whose payload has each of `fields` (equal)."""

    def match(seen: Seen) -> bool:
        if seen.dir != "in" or seen.type != "CALL" or seen.action != action:
            return False
        payload = seen.payload if isinstance(seen.payload, dict) else {}
        return all(payload.get(key) == value for key, value in fields.items())

    return match


def status(connector: int, *statuses: str) -> Match:
    """A StatusNotification for `connector` with one of `statuses` (any when none given)."""

    def match(seen: Seen) -> bool:
        if not charger_call("StatusNotification", connectorId=connector)(seen):
            return False
        return not statuses or seen.payload.get("status") in statuses

    return match


def statuses_of(connector: int) -> Match:
    """Any StatusNotification for `connector`: what a timed-out status wait names."""
    return status(connector)


def start_transaction(connector: int, id_tag: str | None = None) -> Match:
    fields: dict[str, Any] = {"connectorId": connector}
    if id_tag is not None:
        fields["idTag"] = id_tag
    return charger_call("StartTransaction", **fields)


def stop_transaction(reason: str | None = None, transaction_id: int | None = None) -> Match:
    """A StopTransaction; `reason` "Local" also matches one without a reason (its default)."""

    def match(seen: Seen) -> bool:
        if not charger_call("StopTransaction")(seen):
            return False
        payload = seen.payload
        if transaction_id is not None and payload.get("transactionId") != transaction_id:
            return False
        if reason is None:
            return True
        return bool(payload.get("reason", "Local") == reason)

    return match


def answered(seen: Seen, key: str = "transactionId") -> Any:
    """A field of the answer the server gave to a charger call (found in the context's log)."""
    return seen.payload.get(key) if isinstance(seen.payload, dict) else None


def answer_to(ctx: Context, call: Seen) -> Seen | None:
    """The CALLRESULT the server sent for `call`, if it is in the log yet."""
    for seen in ctx.log:
        if seen.dir == "out" and seen.type == "CALLRESULT" and seen.unique_id == call.unique_id:
            return seen
    return None


def transaction_id_of(ctx: Context, start: Seen) -> int | None:
    """The transaction id the server handed out in answer to a StartTransaction."""
    result = answer_to(ctx, start)
    value = answered(result) if result is not None else None
    return value if isinstance(value, int) else None


def expect_status(answer: Answer, *wanted: str, what: str) -> None:
    """Fail unless `answer` is a result whose status is one of `wanted`."""
    if answer.status not in wanted:
        raise CheckFailed(f"{what}: expected {' or '.join(wanted)}; got {answer.describe()}")


def call_expecting(
    action: str, payload: dict[str, Any], *wanted: str, timeout: float = 30.0
) -> Callable[[], Script]:
    """A sub-script: send `action`, fail unless its status is one of `wanted`; returns it."""

    def script() -> Script:
        answer = yield Call(action, payload, timeout=timeout)
        expect_status(answer, *wanted, what=action)
        return answer

    return script


def wait_status(connector: int, *wanted: str, within: float = 30.0) -> Expect:
    """Expect a StatusNotification of `connector` in `wanted`, naming the others on timeout."""
    return Expect(
        f"StatusNotification {' or '.join(wanted)} on connector {connector}",
        status(connector, *wanted),
        within,
        near=status(connector),
    )


# Waits: a person's act and its consequence, a call's answer, a real charger's reboot.
PERSON_WAIT = 30.0
BOOT_WAIT = 120.0
STARTED = ("Charging", "SuspendedEV", "SuspendedEVSE")
NOT_STARTED = ("Available", "Faulted", "Unavailable", "Finishing")


def any_charger_call(seen: Seen) -> bool:
    return seen.dir == "in" and seen.type == "CALL"


def answer_for(call: Seen) -> Match:
    """The server's CALLRESULT to the charger's `call`."""
    return lambda seen: (
        seen.dir == "out" and seen.type == "CALLRESULT" and seen.unique_id == call.unique_id
    )


def meter_values(connector: int | None = None, *contexts: str) -> Match:
    """MeterValues (of `connector`, when given) with a sampled value in one of `contexts`
    (a sampled value without `context` is Sample.Periodic, OCPP 1.6 section 7.45)."""

    def match(seen: Seen) -> bool:
        if not charger_call("MeterValues")(seen):
            return False
        if connector is not None and seen.payload.get("connectorId") != connector:
            return False
        return not contexts or bool(sample_contexts(seen) & set(contexts))

    return match


def sample_contexts(seen: Seen) -> set[str]:
    return {sample.get("context", "Sample.Periodic") for sample in _samples(seen)}


def sample_measurands(seen: Seen) -> set[str]:
    """Measurands of a MeterValues (absent: Energy.Active.Import.Register, section 7.45)."""
    return {sample.get("measurand", "Energy.Active.Import.Register") for sample in _samples(seen)}


def _samples(seen: Seen) -> list[dict[str, Any]]:
    payload = seen.payload if isinstance(seen.payload, dict) else {}
    values = payload.get("meterValue")
    samples: list[dict[str, Any]] = []
    for value in values if isinstance(values, list) else []:
        inner = value.get("sampledValue") if isinstance(value, dict) else None
        samples.extend(item for item in inner or [] if isinstance(item, dict))
    return samples[:1000]


def earlier(ctx: Context, frame: Seen, match: Match) -> list[Seen]:
    """The frames of this check's log before `frame` that `match`."""
    found: list[Seen] = []
    for seen in ctx.log:
        if seen is frame:
            return found
        if match(seen):
            found.append(seen)
    return found


def since(ctx: Context, mark: int, match: Match) -> list[Seen]:
    """The frames of the log from index `mark` (a `len(ctx.log)` taken earlier) that match."""
    return [seen for seen in ctx.log[mark:] if match(seen)]


def last_status(ctx: Context, connector: int) -> str | None:
    """The connector's status in its last StatusNotification of this check's log."""
    for seen in reversed(ctx.log):
        if status(connector)(seen):
            value = seen.payload.get("status")
            return value if isinstance(value, str) else None
    return None


def open_transactions(ctx: Context) -> list[int]:
    """Transactions started in this check's log (their ids from the server's answers) with
    no StopTransaction in it."""
    stopped = {
        seen.payload.get("transactionId")
        for seen in ctx.log
        if charger_call("StopTransaction")(seen)
    }
    started = [
        transaction_id_of(ctx, seen) for seen in ctx.log if charger_call("StartTransaction")(seen)
    ]
    return [
        number for number in dict.fromkeys(started) if number is not None and number not in stopped
    ]


def reason(stop: Seen) -> str:
    """A StopTransaction's reason (absent means Local, OCPP 1.6 section 6.52)."""
    value = stop.payload.get("reason", "Local") if isinstance(stop.payload, dict) else None
    return str(value)


def expect_reason(stop: Seen, wanted: str) -> None:
    if reason(stop) != wanted:
        raise CheckFailed(f"StopTransaction reason: expected {wanted}; got {reason(stop)}")


def second_tag(ctx: Context) -> str:
    """Another idTag than the person's card, for a simulated charger's second card."""
    return (ctx.id_tag[:18] + "-2") if not ctx.id_tag.endswith("-2") else ctx.id_tag[:18] + "-3"


# Sub-scripts (`yield from`): the person's acts, tracked in ctx.facts for the cleanup


def plug(ctx: Context, connector: int | None = None) -> Script:
    number = connector or ctx.connector
    yield Ask(
        f"Plug the cable into connector {number} (and into the car)", "plug", {"connector": number}
    )
    ctx.facts.setdefault("plugged", set()).add(number)


def unplug(ctx: Context, connector: int | None = None) -> Script:
    number = connector or ctx.connector
    yield Ask(
        f"Unplug the cable from connector {number} (the car's end)",
        "unplug",
        {"connector": number},
    )
    ctx.facts.setdefault("plugged", set()).discard(number)


def present_card(ctx: Context, prompt: str | None = None, id_tag: str | None = None) -> Script:
    number = ctx.connector
    yield Ask(
        prompt or f"Present your card at the reader of connector {number}",
        "present_card",
        {"connector": number, "id_tag": id_tag or ctx.id_tag},
    )


def power_cycle(ctx: Context) -> Script:
    yield Ask("Cut the charger's power, then switch it on again", "power_cycle", {})


def change_key(ctx: Context, key: str, value: str) -> Script:
    """Set a configuration key for this check (the cleanup restores it); not applicable when
    the charger has no such key, it is read-only, or the charger refuses the value."""
    if key not in ctx.config:
        raise NotApplicable(f"the charger has no {key} configuration key")
    if ctx.readonly.get(key):
        raise NotApplicable(f"{key} is read-only on this charger")
    if ctx.config.get(key) == value:
        return
    answer = yield Call(
        "ChangeConfiguration", {"key": key, "value": value}, title=f"Set {key} to {value}"
    )
    if answer.status != "Accepted":
        raise NotApplicable(f"the charger refused {key} = {value}: {answer.describe()}")
    remember_key(ctx, key)
    ctx.config[key] = value


def remember_key(ctx: Context, key: str) -> None:
    """Note a key's value before the check changes it (directly, or by a boot's interval)."""
    ctx.facts.setdefault("changed_keys", {}).setdefault(key, ctx.config.get(key))


def expect_started(
    ctx: Context, connector: int, *, id_tag: str | None = None, within: float = PERSON_WAIT
) -> Script:
    """Wait for StartTransaction and StatusNotification Charging (either order, OCPP 1.6
    section 4.8), failing at once on a status that says nothing started; the StartTransaction."""
    what = f"StartTransaction and StatusNotification Charging on connector {connector}"
    starting = start_transaction(connector)
    statuses = status(connector, *STARTED, *NOT_STARTED)
    start: Seen | None = None
    charging: Seen | None = None
    while start is None or charging is None:
        seen = yield Expect(
            what,
            lambda item: starting(item) or statuses(item),
            within,
            near=lambda item: starting(item) or status(connector)(item),
        )
        if seen.action == "StartTransaction":
            start = start or seen
        elif seen.payload.get("status") in STARTED:
            charging = charging or seen
        else:
            raise CheckFailed(f"expected {what}; got {describe(seen)}")
    if id_tag is not None and start.payload.get("idTag") != id_tag:
        raise CheckFailed(
            f"StartTransaction idTag: expected {id_tag}; got {start.payload.get('idTag')}"
        )
    return start


def transaction_of(ctx: Context, start: Seen) -> Script:
    """The transaction id the server gave in answer to `start` (waiting for the answer)."""
    number = transaction_id_of(ctx, start)
    if number is None and answer_to(ctx, start) is None:
        yield Expect("the answer to StartTransaction", answer_for(start), 10.0)
        number = transaction_id_of(ctx, start)
    if number is None:
        raise CheckFailed("the answer to StartTransaction had no transactionId")
    return number


def start_remotely(ctx: Context) -> Script:
    """Plug in, RemoteStartTransaction (Accepted), started: (StartTransaction, its id)."""
    connector = ctx.connector
    yield from plug(ctx)
    yield wait_status(connector, "Preparing", within=PERSON_WAIT)
    answer = yield Call("RemoteStartTransaction", {"connectorId": connector, "idTag": ctx.id_tag})
    expect_status(answer, "Accepted", what="RemoteStartTransaction")
    start = yield from expect_started(ctx, connector, id_tag=ctx.id_tag)
    number = yield from transaction_of(ctx, start)
    return start, number


def start_by_card(ctx: Context) -> Script:
    """Plug in, present the card: started (Authorize unless from the cache); StartTransaction."""
    connector = ctx.connector
    yield from plug(ctx)
    yield wait_status(connector, "Preparing", within=PERSON_WAIT)
    yield from present_card(ctx)
    start = yield from expect_started(ctx, connector)
    yield from transaction_of(ctx, start)
    return start
