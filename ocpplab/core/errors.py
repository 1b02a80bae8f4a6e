"""Every error ocpplab raises on purpose. Third-party errors are translated at the boundary.

How each one is answered over HTTP is decided in one place, `ocpplab.web.errors`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any


class OcpplabError(Exception):
    """Base class for ocpplab's own errors."""


# Start-up


class ConfigError(OcpplabError):
    """A setting has a value that cannot be used; the message names the setting."""


# Broker


class BrokerError(OcpplabError):
    """The broker could not be reached or did not answer."""


class BrokerUnavailable(BrokerError):
    """The broker is down right now; the operation may succeed later."""


# Requests


class InvalidIdentity(OcpplabError):
    """The identity in a request cannot be a charger's; the message says why."""


class NotFound(OcpplabError):
    """A name in a request (an action, a preset, an example, a simulation) names nothing here."""


class UnknownAction(NotFound):
    """The action is not an OCPP 1.6 action that this direction allows.

    `actions` are the ones it allows, when the raiser lists them for the person.
    """

    def __init__(self, message: str, *, actions: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.actions = tuple(actions)


class InvalidBody(OcpplabError):
    """A request body cannot be read as what the request needs; the message says why."""


class SchemaViolation(OcpplabError):
    """A payload breaks its OCPP 1.6 JSON schema; `violations` lists every place (as JSON)."""

    def __init__(self, message: str, violations: Sequence[Mapping[str, Any]]) -> None:
        super().__init__(message)
        self.violations = [dict(violation) for violation in violations]


class InvalidRule(OcpplabError):
    """A responder rule sent by a form or the API cannot be used; the message says why."""


# Chargers and operations


class ChargerOffline(OcpplabError):
    """No charger of that identity is connected to any process."""


class RunInProgress(OcpplabError):
    """Checks already run on that charger (or as many runs as a process allows)."""


class CallTimeout(OcpplabError):
    """The charger did not answer a central-system call in time.

    `unique_id` names the call when it was sent (OCPP-J 1.6 section 4.1.4).
    """

    def __init__(self, message: str, *, unique_id: str | None = None) -> None:
        super().__init__(message)
        self.unique_id = unique_id


class NoLongerHeld(OcpplabError):
    """A call held for a person was answered by someone else, or timed out, before this answer."""


class SimulationRefused(OcpplabError):
    """A simulated charger cannot be started now; the message says why, for a person."""
