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
    """A named answer rule the Configure form offers with one click."""

    name: str
    action: str
    rule: Mapping[str, Any]
    description: str = ""


@dataclasses.dataclass(frozen=True, slots=True, eq=False)
class Dialect:
    """One OCPP version: its subprotocol, actions, schemas, default answers and state."""

    name: str  # for people: "OCPP 1.6"
    subprotocol: str  # the Sec-WebSocket-Protocol token: "ocpp1.6"
    charger_actions: tuple[str, ...]  # actions a charger may CALL, in the order shown
    central_actions_by_profile: Mapping[str, tuple[str, ...]]  # ... the central system may
    error_codes: tuple[str, ...]  # the CALLERROR codes this version defines
    # (action, payload, response) -> violations, bounded (core.schemas); [] when valid
    validate: Callable[[str, Any, bool], list[Violation]]
    # the built-in valid answer to a charger call
    default_answer: Callable[[str, AnswerContext], dict[str, Any]]
    # an example request for a central-system action, for the operation forms
    example_request: Callable[[str, datetime.datetime], dict[str, Any]]
    # the JSON schema of an action's request (response=False) or answer
    schema: Callable[[str, bool], dict[str, Any]]
    new_state: Callable[[], ChargerStateModel]
    # the charger action whose answer hands out a transaction id, if any
    transaction_action: str | None = None
    presets: tuple[Preset, ...] = ()

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


def choose(dialects: tuple[Dialect, ...], offered: list[str]) -> Dialect | None:
    """The first of `dialects` (ours, in order of preference) whose subprotocol was offered."""
    for dialect in dialects:
        if dialect.subprotocol in offered:
            return dialect
    return None
