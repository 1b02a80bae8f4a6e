"""The interface to what is specific to one OCPP version: a `Dialect`.

The gateway, the page socket, the broker and the web layer never name an OCPP action,
schema or answer of their own; they ask the charger's dialect. Adding OCPP 2.0.1 is a new
`Dialect` (and its templates), chosen by the subprotocol a charger offers (OCPP-J 1.6
section 3.1.2, "the OCPP version(s) MUST be specified in the Sec-WebSocket-Protocol field").

The implementations live in `ocpplab.dialects` (OCPP 1.6 in `dialects.ocpp16`). A dialect
is plain data and pure functions, so the core can be tested with a made-up one
(tests/test_dialects.py runs two invented actions through the real gateway).
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from ocpplab.core.checks import Catalogue
from ocpplab.core.schemas import Violation


class ChargerStateModel(Protocol):
    """What a dialect knows of a charger from its calls: the state reducer's product."""

    def apply(self, action: str, payload: Any, answer: Any, at: str) -> str | None:
        """Fold a charger call (and the answer it got, None if none) into the state.

        Returns a note for the log when the call tells something odd (a repeated stop).
        """
        ...

    def to_json(self) -> dict[str, Any]: ...


@dataclasses.dataclass(frozen=True, slots=True)
class AnswerContext:
    """What a default answer may depend on: the time and the next transaction id."""

    now: datetime.datetime
    transaction_id: int


@dataclasses.dataclass(frozen=True, slots=True)
class Preset:
    """A common experiment, an answer rule the Configure form saves with one click.

    `key` names it in the form (unique per action), `label` is the button's text, `rule` is
    the responder rule's JSON (DESIGN.md); `action` None offers it for every charger action.
    """

    key: str
    label: str
    rule: Mapping[str, Any]
    action: str | None = None


class Validate(Protocol):
    """(action, payload, response) -> violations, bounded (core.schemas); [] when valid."""

    def __call__(self, action: str, payload: Any, response: bool) -> list[Violation]: ...


class SchemaOf(Protocol):
    """(action, response) -> the JSON schema of the action's request or answer; KeyError
    for an action the dialect does not define."""

    def __call__(self, action: str, response: bool) -> dict[str, Any]: ...


def _no_help(action: str, response: bool, path: str) -> str:
    return ""


def _nothing(context: Any) -> Any:
    yield from ()


NO_CHECKS = Catalogue(checks=(), prepare=_nothing, cleanup=_nothing)


@dataclasses.dataclass(frozen=True, slots=True, eq=False)
class Dialect:
    """One OCPP version: its subprotocol, actions, schemas, default answers and state."""

    name: str  # for people: "OCPP 1.6"
    subprotocol: str  # the Sec-WebSocket-Protocol token: "ocpp1.6"
    charger_actions: tuple[str, ...]  # actions a charger may CALL, in the order shown
    central_actions_by_profile: Mapping[str, tuple[str, ...]]  # ... the central system may
    error_codes: tuple[str, ...]  # the CALLERROR codes this version defines
    validate: Validate
    # the built-in valid answer to a charger call
    default_answer: Callable[[str, AnswerContext], dict[str, Any]]
    # an example request for a central-system action, for the operation forms
    example_request: Callable[[str, datetime.datetime], dict[str, Any]]
    schema: SchemaOf
    new_state: Callable[[], ChargerStateModel]
    # the charger action whose answer hands out a transaction id, if any
    transaction_action: str | None = None
    presets: tuple[Preset, ...] = ()
    # the template (under templates/) that shows `new_state()`'s JSON on the charger page
    state_template: str = "dialects/generic_state.html"
    # the guided checks of a charger that speaks this version (ocpplab.core.checks)
    checks: Catalogue = NO_CHECKS
    # (action, response, field path) -> a line of help for the forms; "" when none
    field_help: Callable[[str, bool, str], str] = _no_help

    @property
    def central_actions(self) -> tuple[str, ...]:
        return tuple(a for actions in self.central_actions_by_profile.values() for a in actions)

    def profile_of(self, action: str) -> str | None:
        """The feature profile a central-system action belongs to."""
        for profile, actions in self.central_actions_by_profile.items():
            if action in actions:
                return profile
        return None

    def is_charger_action(self, action: str) -> bool:
        return action in self.charger_actions

    def is_central_action(self, action: str) -> bool:
        return any(action in actions for actions in self.central_actions_by_profile.values())

    def knows(self, action: str) -> bool:
        """Whether `action` is one of this version's, in either direction."""
        return self.is_charger_action(action) or self.is_central_action(action)

    def presets_for(self, action: str) -> tuple[Preset, ...]:
        """The presets the Configure form offers for `action`: its own, then the common ones."""
        own = tuple(preset for preset in self.presets if preset.action == action)
        return own + tuple(preset for preset in self.presets if preset.action is None)


def choose(dialects: tuple[Dialect, ...], offered: list[str]) -> Dialect | None:
    """The first of `dialects` (ours, in order of preference) whose subprotocol was offered."""
    for dialect in dialects:
        if dialect.subprotocol in offered:
            return dialect
    return None
