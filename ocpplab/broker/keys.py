"""The broker's names: one events channel, one command channel and a few keys per identity.

The identity is escaped, so that no identity can collide with another's names.
"""

from __future__ import annotations

from urllib.parse import quote

INSTANCES = "ocpplab:instances"  # the set of live instances' records (`instance_key`)


def _escape(identity: str) -> str:
    # Percent-encode everything but unreserved characters, so ":" or "*" in an identity
    # can never reach another identity's names.
    return quote(identity, safe="")


def events_channel(identity: str) -> str:
    """Gateway -> pages: frames, connection events, state."""
    return f"ocpplab:events:{_escape(identity)}"


def commands_channel(identity: str) -> str:
    """Pages, forms and the API -> the gateway holding the charger."""
    return f"ocpplab:commands:{_escape(identity)}"


def settings_key(identity: str) -> str:
    """The identity's responder settings (JSON, with a TTL)."""
    return f"ocpplab:settings:{_escape(identity)}"


def presence_key(identity: str) -> str:
    """Who holds the charger right now, since when, and its derived state."""
    return f"ocpplab:presence:{_escape(identity)}"


def generation_key(identity: str) -> str:
    """How many connections the identity has had: the newest one's number (see `Fence`)."""
    return f"ocpplab:generation:{_escape(identity)}"


def transactions_key(identity: str) -> str:
    """The last transaction id handed to the identity, wherever it was connected."""
    return f"ocpplab:transactions:{_escape(identity)}"


def sequences_key(identity: str) -> str:
    """Where the identity's answer sequences are: `{action: calls answered}` (JSON, TTL);
    absent, or an action missing: at its start."""
    return f"ocpplab:sequences:{_escape(identity)}"


def instance_key(instance: str) -> str:
    """One instance's record: how many chargers it holds, and the first few of them."""
    return f"ocpplab:instance:{_escape(instance)}"


def recording_key(identity: str) -> str:
    """The identity's recording: a bounded list of NDJSON lines (`core.recording`)."""
    return f"ocpplab:recording:{_escape(identity)}"


def recording_state_key(identity: str) -> str:
    """Whether the identity is being recorded: `{"on", "started", "truncated"}` JSON."""
    return f"ocpplab:recording-state:{_escape(identity)}"


def history_key(identity: str) -> str:
    """The identity's last connection as a page's replay (`ReplayEvent` JSON, with a TTL):
    what a page opened after the charger left shows."""
    return f"ocpplab:history:{_escape(identity)}"


def disconnect_key(identity: str) -> str:
    """How the identity's last connection ended: `{"session", "at", "code", "reason"}`
    JSON, written with its history; small, so that every status can read it."""
    return f"ocpplab:disconnect:{_escape(identity)}"


def checks_key(identity: str) -> str:
    """The identity's current or last check run's report (JSON, with a TTL)."""
    return f"ocpplab:checks:{_escape(identity)}"


def check_commands_channel(identity: str) -> str:
    """Where a page or the API (on any worker) answers or aborts the identity's check run."""
    return f"ocpplab:check-commands:{_escape(identity)}"


def refused_key(identity: str) -> str:
    """While it exists (a TTL), the gateway refuses the identity's connections: a check
    that makes the charger go offline (`CentralSystem.cut`)."""
    return f"ocpplab:refused:{_escape(identity)}"
