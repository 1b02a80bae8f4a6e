"""Every error ocpplab raises on purpose. Third-party errors are translated at the boundary."""

from __future__ import annotations


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


# Chargers and operations


class ChargerOffline(OcpplabError):
    """No charger of that identity is connected to any process."""


class CallTimeout(OcpplabError):
    """The charger did not answer a central-system call in time."""


class InvalidRule(OcpplabError):
    """A responder rule sent by a form or the API cannot be used; the message says why."""


class UnknownAction(OcpplabError):
    """The action is not an OCPP 1.6 action that this direction allows."""


class SimulationRefused(OcpplabError):
    """A simulated charger cannot be started now; the message says why, for a person."""
