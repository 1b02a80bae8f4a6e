"""Guided charger checks, without I/O: scripts of steps run against what a charger sends.

A check is a generator function `script(ctx)` that yields steps: send a call (`Call`),
wait for a frame (`Expect`, `ExpectAll`), make sure one does not come (`Absent`), ask the
person to act (`Ask`), answer differently for a while (`SetRule`), cut the connection
(`Cut`), wait (`Wait`) or note something (`Note`). The engine (`Run`) feeds each step's
result back into the script, ends a step that takes too long by throwing `Timeout` into it,
and turns how the script ends into a verdict: it returns (passed), raises `CheckFailed`
(failed, with the reason), raises `NotApplicable`, or the person aborts.

`Run` is sans-I/O like `ocpplab.core.connection.Connection`: a driver (the check runner in
`ocpplab.tools.check_runs`) hands it the charger's frames (`frame`), the answers to its
calls (`answered`), the person's replies (`person`), the end of its other effects (`done`)
and the passing of time (`tick` at `next_deadline()`), and carries out what
`take_effects()` returns. Time comes from a `Clock`, so tests run it on a literal one.

After each check, whatever its verdict, the catalogue's `cleanup` script runs (stop a
transaction the check left, restore a configuration key, unplug), and the person's answer
rules are restored (`RestoreRules`) when the check changed them; an abort restores them too.
"""

from __future__ import annotations

import dataclasses
import enum
import itertools
from collections.abc import Callable, Generator, Iterable, Sequence
from typing import Any

from ocpplab.core.clock import Clock

Json = Any

# How long the engine waits for the driver's side of an effect before giving up on it: the
# gateway's own call timeout ends a call first; these only keep a lost answer from hanging a run.
CALL_GRACE = 15.0
EFFECT_TIMEOUT = 30.0
PERSON_TIMEOUT = 600.0
MAX_LOG = 2_000  # frames kept per check as evidence (a flooding charger cannot grow a run)
MAX_TEXT = 300  # characters of a reason or detail


class Verdict(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    PASSED = "passed"
    FAILED = "failed"
    NOT_APPLICABLE = "not_applicable"
    ABORTED = "aborted"


class CheckFailed(Exception):
    """Raised by a script (or thrown into it) to fail the check with a reason."""


class Timeout(CheckFailed):
    """Thrown into a script when a step's deadline passes; a script may catch it."""


class NotApplicable(Exception):
    """Raised by a script when the charger cannot be checked this way (no such profile)."""


# What a check sees


@dataclasses.dataclass(frozen=True, slots=True)
class Seen:
    """One frame (or connection event) on the charger's connection, as checks see it.

    `dir` is "in" (from the charger), "out" (to it) or "event" (type "connected" or
    "disconnected"); `payload` is the CALL's or CALLRESULT's payload, or for a CALLERROR
    `{"errorCode": …, "errorDescription": …}`. A CALLRESULT's `action` is its call's.
    """

    dir: str
    type: str
    action: str | None = None
    unique_id: str | None = None
    payload: Json = None
    at: float = 0.0


@dataclasses.dataclass(frozen=True, slots=True)
class Answer:
    """How a call of the check ended: "result", "error" (CALLERROR), "timeout" or "offline"."""

    outcome: str
    payload: Json = None
    error_code: str | None = None
    unique_id: str | None = None

    @property
    def status(self) -> str | None:
        """The answer's `status` field, when it is a result that has one."""
        if self.outcome == "result" and isinstance(self.payload, dict):
            status = self.payload.get("status")
            return status if isinstance(status, str) else None
        return None

    def describe(self) -> str:
        if self.outcome == "result":
            return f"status {self.status}" if self.status else f"result {self.payload!r}"[:120]
        if self.outcome == "error":
            return f"CALLERROR {self.error_code}"
        if self.outcome == "offline":
            return "no answer: the charger is not connected"
        return "no answer in time"


Match = Callable[[Seen], bool]


# Steps a script yields


@dataclasses.dataclass(frozen=True, slots=True)
class Call:
    """Send a central-system call; the result is an `Answer` (never raises)."""

    action: str
    payload: Json
    timeout: float = 30.0
    title: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Expect:
    """Wait for a frame that `match`es, at most `within` s; the result is that `Seen`.

    Frames count from the last call, question or cut before it (or the previous frame an
    Expect took), so a frame that came while the call's answer was on its way is not missed.
    `near` picks the frames to name when it times out ("got Available"); by default the
    charger's calls.
    """

    what: str
    match: Match
    within: float = 30.0
    near: Match | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class ExpectAll:
    """Wait for one frame matching each of `items` (what, match), in any order."""

    items: tuple[tuple[str, Match], ...]
    within: float = 30.0


@dataclasses.dataclass(frozen=True, slots=True)
class Absent:
    """Pass when no frame matches for `during` s; fail at the first that does."""

    what: str
    match: Match
    during: float


@dataclasses.dataclass(frozen=True, slots=True)
class Ask:
    """Ask the person to do something physical; `act` names it for a simulated charger
    ("plug", "unplug", "present_card", "power_cycle"). "Can't do this" ends the check as
    not applicable."""

    prompt: str
    act: str
    detail: dict[str, Json] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, slots=True)
class SetRule:
    """Answer `action` by `rule` (responder rule JSON; None: the default) until restored."""

    action: str
    rule: dict[str, Json] | None
    title: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Cut:
    """Close the charger's connection and refuse it for `seconds`, to make it go offline."""

    seconds: float


@dataclasses.dataclass(frozen=True, slots=True)
class Wait:
    seconds: float
    why: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class Note:
    text: str


Step = Call | Expect | ExpectAll | Absent | Ask | SetRule | Cut | Wait | Note
Script = Generator[Step, Any, Any]


# Effects the driver carries out


@dataclasses.dataclass(frozen=True, slots=True)
class SendCallEffect:
    token: str  # also the call's unique id, so evidence links to the log
    action: str
    payload: Json
    timeout: float


@dataclasses.dataclass(frozen=True, slots=True)
class ApplyRuleEffect:
    token: str
    action: str
    rule: dict[str, Json] | None


@dataclasses.dataclass(frozen=True, slots=True)
class RestoreRulesEffect:
    token: str


@dataclasses.dataclass(frozen=True, slots=True)
class AskPersonEffect:
    token: str
    prompt: str
    act: str
    detail: dict[str, Json]


@dataclasses.dataclass(frozen=True, slots=True)
class CutEffect:
    token: str
    seconds: float


Effect = SendCallEffect | ApplyRuleEffect | RestoreRulesEffect | AskPersonEffect | CutEffect


# The catalogue


@dataclasses.dataclass
class Context:
    """What scripts know of the charger; the catalogue's `prepare` script fills it in."""

    connector: int = 1  # the connector checks use
    connectors: int = 1
    id_tag: str = "OCPPLAB-CARD"  # the card the person presents (accepted by default)
    config: dict[str, str | None] = dataclasses.field(default_factory=dict)
    readonly: dict[str, bool] = dataclasses.field(default_factory=dict)
    profiles: set[str] | None = None  # SupportedFeatureProfiles; None: not known
    facts: dict[str, Any] = dataclasses.field(default_factory=dict)  # for the catalogue
    log: list[Seen] = dataclasses.field(default_factory=list)  # this check's frames
    clock: Clock | None = None

    def now_iso(self) -> str:
        assert self.clock is not None
        return self.clock.now().isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclasses.dataclass(frozen=True, slots=True)
class Check:
    id: str  # the OCTT test case it follows: "TC_003_CS"
    title: str
    purpose: str
    profile: str  # the feature profile it needs: "Core", "RemoteTrigger", ...
    script: Callable[[Context], Script]
    preconditions: str = "Booted Accepted, idle"
    person: tuple[str, ...] = ()  # acts it asks for

    def summary(self) -> dict[str, Json]:
        return {
            "id": self.id,
            "title": self.title,
            "purpose": self.purpose,
            "profile": self.profile,
            "preconditions": self.preconditions,
            "person": list(dict.fromkeys(self.person)),
        }


@dataclasses.dataclass(frozen=True, slots=True)
class Catalogue:
    """A dialect's checks, the script that reads the charger first, and the tidy-up."""

    checks: tuple[Check, ...]
    prepare: Callable[[Context], Script]
    cleanup: Callable[[Context], Script]

    def grouped(self) -> list[tuple[str, list[dict[str, Json]]]]:
        """The checks' summaries by feature profile, Core first."""
        groups: dict[str, list[dict[str, Json]]] = {}
        for check in self.checks:
            groups.setdefault(check.profile, []).append(check.summary())
        return sorted(groups.items(), key=lambda item: (item[0] != "Core", item[0]))

    def select(self, only: Iterable[str] | None) -> tuple[Check, ...]:
        """The checks named in `only` (ids, case-insensitive, in catalogue order); all when
        None. Raises KeyError naming an id that is not in the catalogue."""
        if only is None:
            return self.checks
        wanted = {item.strip().upper() for item in only if item.strip()}
        known = {check.id for check in self.checks}
        unknown = sorted(wanted - known)
        if unknown:
            raise KeyError(", ".join(unknown))
        return tuple(check for check in self.checks if check.id in wanted)


# Records


@dataclasses.dataclass
class StepRecord:
    title: str
    state: str = "running"  # running, passed, failed, waiting (for the person), info
    detail: str = ""
    evidence: list[str] = dataclasses.field(default_factory=list)  # unique ids
    started: str = ""
    ended: str | None = None
    phase: str = "check"  # "check" or "cleanup"

    def to_json(self) -> dict[str, Json]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class CheckRecord:
    check: Check
    verdict: Verdict = Verdict.PENDING
    reason: str | None = None
    started: str | None = None
    ended: str | None = None
    steps: list[StepRecord] = dataclasses.field(default_factory=list)

    def to_json(self) -> dict[str, Json]:
        return {
            **self.check.summary(),
            "verdict": self.verdict.value,
            "reason": self.reason,
            "started": self.started,
            "ended": self.ended,
            "steps": [step.to_json() for step in self.steps],
        }


def describe(seen: Seen) -> str:
    """A frame in a few words, for reasons: "StatusNotification Available (connector 1)"."""
    if seen.dir == "event":
        return f"the charger {seen.type}"
    words = [seen.action or seen.type]
    payload = seen.payload if isinstance(seen.payload, dict) else {}
    if seen.type == "CALLERROR":
        words.append(f"CALLERROR {payload.get('errorCode')}")
    else:
        for key in ("status", "reason", "requestedMessage", "type"):
            if isinstance(payload.get(key), str):
                words.append(str(payload[key]))
        info = payload.get("idTagInfo")
        if isinstance(info, dict) and isinstance(info.get("status"), str):
            words.append(f"idTag {info['status']}")
        if isinstance(payload.get("connectorId"), int):
            words.append(f"(connector {payload['connectorId']})")
    return " ".join(words)


def _charger_call(seen: Seen) -> bool:
    return seen.dir == "in" and seen.type == "CALL"


def _cut(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


@dataclasses.dataclass
class _Waiting:
    step: Step
    record: StepRecord
    deadline: float | None
    token: str | None = None
    start: int = 0  # index into the log the step searches from
    found: dict[int, Seen] = dataclasses.field(default_factory=dict)  # ExpectAll so far


def _sending(value: Any) -> Callable[[Script], Step]:
    return lambda script: script.send(value)


def _throwing(error: BaseException) -> Callable[[Script], Step]:
    return lambda script: script.throw(error)


class Run:
    """One run of some checks on one charger (see the module's docstring)."""

    def __init__(
        self,
        catalogue: Catalogue,
        checks: Sequence[Check],
        context: Context,
        clock: Clock,
        *,
        token_prefix: str = "check",
    ) -> None:
        self.catalogue = catalogue
        self.context = context
        self.context.clock = clock
        self.clock = clock
        self.records = [CheckRecord(check) for check in checks]
        self.prepare = StepRecord("Read the charger's configuration", state="pending")
        self.state = "pending"  # pending, running, finished, aborted
        self.started: str | None = None
        self.ended: str | None = None
        self.changed = True  # the report changed since the driver last looked
        self._effects: list[Effect] = []
        self._tokens = (f"{token_prefix}-{n}" for n in itertools.count(1))
        self._script: Script | None = None
        self._phase = "prepare"  # prepare, check, cleanup, done
        self._index = -1  # the check being run
        self._waiting: _Waiting | None = None
        self._cursor = 0
        self._rules_changed = False
        self._restoring: str | None = None

    # Inputs

    def start(self) -> None:
        self.state = "running"
        self.started = self._wall()
        self.prepare.state = "running"
        self.prepare.started = self.started
        self._begin(self.catalogue.prepare(self.context))

    def frame(self, seen: Seen) -> None:
        if self.state != "running":
            return
        log = self.context.log
        if len(log) >= MAX_LOG:
            del log[: MAX_LOG // 2]
            self._cursor = max(0, self._cursor - MAX_LOG // 2)
            if self._waiting is not None:
                self._waiting.start = max(0, self._waiting.start - MAX_LOG // 2)
                self._waiting.found = {}
        log.append(seen)
        waiting = self._waiting
        if waiting is None:
            return
        step = waiting.step
        index = len(log) - 1
        if isinstance(step, Expect) and step.match(seen):
            self._resolve_expect(waiting, index, seen)
        elif isinstance(step, ExpectAll):
            self._collect(waiting, index, seen)
        elif isinstance(step, Absent) and step.match(seen):
            self._fail_absent(waiting, seen)

    def answered(self, token: str, answer: Answer) -> None:
        waiting = self._waiting
        if waiting is None or waiting.token != token or not isinstance(waiting.step, Call):
            return
        self._close(waiting, "passed", f"answered: {answer.describe()}", [token])
        self._advance(answer)

    def done(self, token: str) -> None:
        """A rule applied, the rules restored, or the connection cut."""
        if self._restoring == token:
            self._restoring = None
            self._next_check()
            return
        waiting = self._waiting
        if waiting is None or waiting.token != token:
            return
        self._close(waiting, "passed", waiting.record.detail)
        self._advance(None)

    def person(self, token: str, done: bool) -> None:
        waiting = self._waiting
        if waiting is None or waiting.token != token or not isinstance(waiting.step, Ask):
            return
        if done:
            self._close(waiting, "passed", "done")
            self._advance(None)
        else:
            self._close(waiting, "failed", "the person could not do this")
            self._end_script(
                NotApplicable(f"needs a person ({waiting.step.prompt}); they could not")
            )

    def tick(self) -> None:
        waiting = self._waiting
        if waiting is None or waiting.deadline is None:
            return
        if self.clock.monotonic() < waiting.deadline:
            return
        step = waiting.step
        if isinstance(step, Call):
            self._close(waiting, "failed", "no answer from the driver in time")
            self._advance(Answer("timeout", unique_id=waiting.token))
        elif isinstance(step, Expect):
            got = self._got(waiting, step.near)
            reason = f"expected {step.what} within {step.within:g} s; got {got}"
            self._close(waiting, "failed", reason)
            self._throw(Timeout(reason))
        elif isinstance(step, ExpectAll):
            missing = [what for i, (what, _) in enumerate(step.items) if i not in waiting.found]
            reason = (
                f"expected {' and '.join(missing)} within {step.within:g} s; "
                f"got {self._got(waiting, None)}"
            )
            self._close(waiting, "failed", reason)
            self._throw(Timeout(reason))
        elif isinstance(step, Absent):
            self._close(waiting, "passed", f"none within {step.during:g} s")
            self._cursor = len(self.context.log)
            self._advance(None)
        elif isinstance(step, Wait):
            self._close(waiting, "passed", "")
            self._advance(None)
        elif isinstance(step, Ask):
            self._close(waiting, "failed", "nobody answered")
            self._end_script(NotApplicable("needs a person; nobody answered within 10 min"))
        else:
            self._close(waiting, "failed", "ocpplab did not carry this out in time")
            self._throw(CheckFailed(f"{waiting.record.title}: not carried out in time"))

    def abort(self, reason: str = "aborted by the person") -> None:
        if self.state != "running":
            return
        if self._waiting is not None:
            self._close(self._waiting, "failed", "aborted")
            self._waiting = None
        if self._script is not None:
            self._script.close()
            self._script = None
        for record in self.records:
            if record.verdict in (Verdict.PENDING, Verdict.RUNNING):
                record.verdict = Verdict.ABORTED
                record.reason = reason
                record.ended = self._wall()
        if self.prepare.state in ("pending", "running"):
            self.prepare.state = "failed"
            self.prepare.detail = reason
        self._effects.append(RestoreRulesEffect(next(self._tokens)))
        self._finish("aborted")

    # Outputs

    def take_effects(self) -> list[Effect]:
        effects, self._effects = self._effects, []
        return effects

    def next_deadline(self) -> float | None:
        return self._waiting.deadline if self._waiting is not None else None

    @property
    def finished(self) -> bool:
        return self.state in ("finished", "aborted")

    @property
    def prompt(self) -> dict[str, Json] | None:
        waiting = self._waiting
        if waiting is not None and isinstance(waiting.step, Ask):
            return {
                "token": waiting.token,
                "text": waiting.step.prompt,
                "act": waiting.step.act,
                "detail": waiting.step.detail,
            }
        return None

    def report(self) -> dict[str, Json]:
        counts = {verdict.value: 0 for verdict in Verdict}
        for record in self.records:
            counts[record.verdict.value] += 1
        return {
            "state": self.state,
            "started": self.started,
            "ended": self.ended,
            "prepare": self.prepare.to_json(),
            "summary": counts,
            "prompt": self.prompt,
            "checks": [record.to_json() for record in self.records],
        }

    # The machinery

    def _wall(self) -> str:
        return self.context.now_iso()

    def _current(self) -> CheckRecord | None:
        return self.records[self._index] if 0 <= self._index < len(self.records) else None

    def _begin(self, script: Script) -> None:
        self._script = script
        self._cursor = 0
        self._advance(None)

    def _advance(self, value: Any) -> None:
        self._step(_sending(value))

    def _throw(self, error: BaseException) -> None:
        self._step(_throwing(error))

    def _step(self, resume: Callable[[Script], Step]) -> None:
        self._waiting = None
        while self._script is not None:
            try:
                step = resume(self._script)
            except StopIteration:
                self._end_script(None)
                return
            except (CheckFailed, NotApplicable) as error:
                self._end_script(error)
                return
            except Exception as error:  # a bug in a script must not end the run
                self._end_script(CheckFailed(f"the check itself failed: {error!r}"))
                return
            ended = self._start_step(step)
            if ended is None:
                return  # waiting for an input
            resume = ended

    def _start_step(self, step: Step) -> Callable[[Script], Step] | None:
        """Begin a step: how to resume the script when it ended at once, else None."""
        now = self.clock.monotonic()
        record = self._record(self._title(step))
        log = self.context.log
        if isinstance(step, Note):
            record.state, record.ended = "info", record.started
            return _sending(None)
        if isinstance(step, Call):
            token = next(self._tokens)
            self._cursor = len(log)
            self._waiting = _Waiting(step, record, now + step.timeout + CALL_GRACE, token)
            self._effects.append(SendCallEffect(token, step.action, step.payload, step.timeout))
            return None
        if isinstance(step, Expect):
            waiting = _Waiting(step, record, now + step.within, start=self._cursor)
            for index in range(self._cursor, len(log)):
                if step.match(log[index]):
                    self._resolve_expect(waiting, index, log[index], resume=False)
                    return _sending(log[index])
            self._waiting = waiting
            return None
        if isinstance(step, ExpectAll):
            waiting = _Waiting(step, record, now + step.within, start=self._cursor)
            for index in range(self._cursor, len(log)):
                if self._collect(waiting, index, log[index], resume=False):
                    return _sending([waiting.found[i] for i in range(len(step.items))])
            self._waiting = waiting
            return None
        if isinstance(step, Absent):
            waiting = _Waiting(step, record, now + step.during, start=self._cursor)
            for index in range(self._cursor, len(log)):
                if step.match(log[index]):
                    reason = self._absent_reason(step, log[index])
                    self._close(waiting, "failed", reason, self._uid(log[index]))
                    return _throwing(CheckFailed(reason))
            self._waiting = waiting
            return None
        if isinstance(step, Wait):
            self._waiting = _Waiting(step, record, now + step.seconds)
            return None
        token = next(self._tokens)
        self._cursor = len(log)
        if isinstance(step, Ask):
            record.state = "waiting"
            self._waiting = _Waiting(step, record, now + PERSON_TIMEOUT, token)
            self._effects.append(AskPersonEffect(token, step.prompt, step.act, dict(step.detail)))
        elif isinstance(step, SetRule):
            self._rules_changed = True
            self._waiting = _Waiting(step, record, now + EFFECT_TIMEOUT, token)
            self._effects.append(ApplyRuleEffect(token, step.action, step.rule))
        else:
            self._waiting = _Waiting(step, record, now + step.seconds + EFFECT_TIMEOUT, token)
            self._effects.append(CutEffect(token, step.seconds))
        self.changed = True
        return None

    def _title(self, step: Step) -> str:
        if isinstance(step, Call):
            return step.title or f"Send {step.action}"
        if isinstance(step, Expect):
            return f"Wait for {step.what} (up to {step.within:g} s)"
        if isinstance(step, ExpectAll):
            whats = " and ".join(what for what, _ in step.items)
            return f"Wait for {whats} (up to {step.within:g} s)"
        if isinstance(step, Absent):
            return f"Make sure no {step.what} comes for {step.during:g} s"
        if isinstance(step, Ask):
            return step.prompt
        if isinstance(step, SetRule):
            return step.title or (
                f"Answer {step.action} with the default"
                if step.rule is None
                else f"Answer {step.action}: {step.rule.get('mode', '')}"
            )
        if isinstance(step, Cut):
            return f"Cut the connection and refuse it for {step.seconds:g} s"
        if isinstance(step, Wait):
            return f"Wait {step.seconds:g} s" + (f" ({step.why})" if step.why else "")
        return _cut(step.text)

    def _record(self, title: str) -> StepRecord:
        record = StepRecord(_cut(title), started=self._wall())
        current = self._current()
        if current is None:
            self.prepare.detail = record.title
        else:
            record.phase = "cleanup" if self._phase == "cleanup" else "check"
            current.steps.append(record)
        self.changed = True
        return record

    def _close(
        self, waiting: _Waiting, state: str, detail: str, evidence: list[str] | None = None
    ) -> None:
        record = waiting.record
        record.state = state
        record.detail = _cut(detail)
        record.ended = self._wall()
        if evidence:
            record.evidence.extend(evidence)
        self.changed = True

    @staticmethod
    def _uid(seen: Seen) -> list[str]:
        return [seen.unique_id] if seen.unique_id else []

    def _resolve_expect(
        self, waiting: _Waiting, index: int, seen: Seen, *, resume: bool = True
    ) -> None:
        if index < waiting.start:
            return
        self._close(waiting, "passed", describe(seen), self._uid(seen))
        self._cursor = index + 1
        if resume:
            self._advance(seen)

    def _collect(self, waiting: _Waiting, index: int, seen: Seen, *, resume: bool = True) -> bool:
        step = waiting.step
        assert isinstance(step, ExpectAll)
        if index < waiting.start:
            return False
        for i, (_, match) in enumerate(step.items):
            if i not in waiting.found and match(seen):
                waiting.found[i] = seen
                waiting.record.evidence.extend(self._uid(seen))
                break
        if len(waiting.found) < len(step.items):
            return False
        frames = [waiting.found[i] for i in range(len(step.items))]
        self._close(waiting, "passed", "; ".join(describe(frame) for frame in frames))
        self._cursor = max(self._cursor, index + 1)
        if resume:
            self._advance(frames)
        return True

    def _absent_reason(self, step: Absent, seen: Seen) -> str:
        return f"expected no {step.what} for {step.during:g} s; got {describe(seen)}"

    def _fail_absent(self, waiting: _Waiting, seen: Seen) -> None:
        assert isinstance(waiting.step, Absent)
        reason = self._absent_reason(waiting.step, seen)
        self._close(waiting, "failed", reason, self._uid(seen))
        self._throw(CheckFailed(reason))

    def _got(self, waiting: _Waiting, near: Match | None) -> str:
        frames = [
            seen for seen in self.context.log[waiting.start :] if (near or _charger_call)(seen)
        ]
        if not frames:
            return "nothing"
        shown = [describe(seen) for seen in frames[-5:]]
        more = f"{len(frames) - 5} more, then " if len(frames) > 5 else ""
        return more + ", ".join(shown)

    def _end_script(self, error: BaseException | None) -> None:
        self._waiting = None
        if self._script is not None:
            self._script.close()
        self._script = None
        if self._phase == "prepare":
            if error is None:
                self.prepare.state = "passed"
                self.prepare.detail = "read"
            else:
                self.prepare.state = "failed"
                self.prepare.detail = _cut(str(error))
                for record in self.records:
                    record.verdict = Verdict.NOT_APPLICABLE
                    record.reason = _cut(f"the charger could not be read: {error}")
                self._finish("finished")
                return
            self.prepare.ended = self._wall()
            self._next_check()
            return
        current = self._current()
        assert current is not None
        if self._phase == "check":
            if error is None:
                current.verdict = Verdict.PASSED
            elif isinstance(error, NotApplicable):
                current.verdict = Verdict.NOT_APPLICABLE
                current.reason = _cut(str(error))
            else:
                current.verdict = Verdict.FAILED
                current.reason = _cut(str(error))
                # The step whose result the script judged wrong is the last one it took.
                last = current.steps[-1] if current.steps else None
                if last is not None and last.state == "passed":
                    last.state = "failed"
            self._phase = "cleanup"
            self._begin(self.catalogue.cleanup(self.context))
            return
        # The cleanup ended: note a failure, then restore the rules and go on.
        if error is not None:
            note = StepRecord(
                _cut(f"Tidying up failed: {error}"), state="info", started=self._wall()
            )
            note.phase = "cleanup"
            current.steps.append(note)
        current.ended = self._wall()
        self.changed = True
        if self._rules_changed:
            self._rules_changed = False
            self._restoring = next(self._tokens)
            self._effects.append(RestoreRulesEffect(self._restoring))
            return
        self._next_check()

    def _next_check(self) -> None:
        self._index += 1
        current = self._current()
        if current is None:
            self._finish("finished")
            return
        self._phase = "check"
        current.verdict = Verdict.RUNNING
        current.started = self._wall()
        self.context.log.clear()
        self.changed = True
        profiles = self.context.profiles
        if profiles is not None and current.check.profile not in profiles:
            self._end_script(
                NotApplicable(
                    f"the charger does not support the {current.check.profile} profile "
                    f"(SupportedFeatureProfiles: {', '.join(sorted(profiles)) or 'none'})"
                )
            )
            return
        self._begin(current.check.script(self.context))

    def _finish(self, state: str) -> None:
        self._phase = "done"
        self.state = state
        self.ended = self._wall()
        self.changed = True


REPORT_FORMAT = "ocpplab-check-report"
REPORT_VERSION = 1

_STEP_SCHEMA: dict[str, Json] = {
    "type": "object",
    "required": ["title", "state", "detail", "evidence", "started", "ended", "phase"],
    "additionalProperties": False,
    "properties": {
        "title": {"type": "string"},
        "state": {"enum": ["pending", "running", "passed", "failed", "waiting", "info"]},
        "detail": {"type": "string"},
        "evidence": {"type": "array", "items": {"type": "string"}},
        "started": {"type": "string"},
        "ended": {"type": ["string", "null"]},
        "phase": {"enum": ["check", "cleanup"]},
    },
}

REPORT_SCHEMA: dict[str, Json] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": "ocpplab check report",
    "type": "object",
    "required": [
        "format",
        "version",
        "identity",
        "charger",
        "state",
        "started",
        "ended",
        "prepare",
        "summary",
        "prompt",
        "checks",
    ],
    "additionalProperties": False,
    "properties": {
        "format": {"const": REPORT_FORMAT},
        "version": {"const": REPORT_VERSION},
        "identity": {"type": "string"},
        "charger": {
            "type": "object",
            "properties": {
                key: {"type": ["string", "null"]}
                for key in ("vendor", "model", "firmware", "serial")
            },
            "required": ["vendor", "model", "firmware", "serial"],
            "additionalProperties": False,
        },
        "state": {"enum": ["pending", "running", "finished", "aborted"]},
        "started": {"type": ["string", "null"]},
        "ended": {"type": ["string", "null"]},
        "prepare": _STEP_SCHEMA,
        "summary": {
            "type": "object",
            "required": [verdict.value for verdict in Verdict],
            "additionalProperties": False,
            "properties": {verdict.value: {"type": "integer", "minimum": 0} for verdict in Verdict},
        },
        "prompt": {
            "oneOf": [
                {"type": "null"},
                {
                    "type": "object",
                    "required": ["token", "text", "act", "detail"],
                    "properties": {
                        "token": {"type": "string"},
                        "text": {"type": "string"},
                        "act": {"type": "string"},
                        "detail": {"type": "object"},
                    },
                },
            ]
        },
        "checks": {
            "type": "array",
            "items": {
                "type": "object",
                "required": [
                    "id",
                    "title",
                    "purpose",
                    "profile",
                    "preconditions",
                    "person",
                    "verdict",
                    "reason",
                    "started",
                    "ended",
                    "steps",
                ],
                "additionalProperties": False,
                "properties": {
                    "id": {"type": "string", "pattern": "^TC_[0-9]{3}(_[0-9]+)?_CS$"},
                    "title": {"type": "string"},
                    "purpose": {"type": "string"},
                    "profile": {"type": "string"},
                    "preconditions": {"type": "string"},
                    "person": {"type": "array", "items": {"type": "string"}},
                    "verdict": {"enum": [verdict.value for verdict in Verdict]},
                    "reason": {"type": ["string", "null"]},
                    "started": {"type": ["string", "null"]},
                    "ended": {"type": ["string", "null"]},
                    "steps": {"type": "array", "items": _STEP_SCHEMA},
                },
            },
        },
    },
}


def full_report(run: Run, identity: str, charger: dict[str, str | None]) -> dict[str, Json]:
    """The run's report in its published form (REPORT_SCHEMA)."""
    return {
        "format": REPORT_FORMAT,
        "version": REPORT_VERSION,
        "identity": identity,
        "charger": {key: charger.get(key) for key in ("vendor", "model", "firmware", "serial")},
        **run.report(),
    }
