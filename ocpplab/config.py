"""Settings: one table, read once from the environment, overridden by CLI flags.

Every setting has a name, a default, a cast and a line of help. The README's settings table
is checked against `SETTINGS` by the test suite, so the two never drift apart.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from ocpplab.core.errors import ConfigError

ENV_PREFIX = "OCPPLAB_"


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError("must be at least 1")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise ValueError("must be between 0 and 65535")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value < 0:
        raise ValueError("must be a number of seconds, 0 or more")
    return value


def _positive_seconds(text: str) -> float:
    value = _seconds(text)
    if value == 0:
        raise ValueError("must be more than 0")
    return value


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError("must be true or false")


def _redis_url(text: str) -> str | None:
    if not text:
        return None
    scheme = urlsplit(text).scheme
    if scheme not in {"redis", "rediss", "unix"}:
        raise ValueError("must start with redis://, rediss:// or unix://")
    return text


def _public_url(text: str) -> str | None:
    if not text:
        return None
    parts = urlsplit(text)
    if parts.scheme not in {"http", "https", "ws", "wss"} or not parts.netloc:
        raise ValueError("must be an absolute URL such as https://ocpp.example.com")
    return text.rstrip("/")


def _optional_text(text: str) -> str | None:
    return text or None


def _existing_file(text: str) -> str | None:
    # Checked here so that a typo stops start-up with the setting's name, not a traceback.
    if not text:
        return None
    if not os.path.isfile(text):
        raise ValueError("no such file")
    return text


def _host_list(text: str) -> tuple[str, ...]:
    hosts = tuple(item.strip().lower() for item in text.split(",") if item.strip())
    for host in hosts:
        if any(char in host for char in "/:@ "):
            raise ValueError(f"{host!r} is not a host name (no scheme, port or path)")
    return hosts


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError("must be 0 or more")
    return value


def _log_level(text: str) -> str:
    lowered = text.lower()
    if lowered not in {"critical", "error", "warning", "info", "debug"}:
        raise ValueError("must be one of critical, error, warning, info, debug")
    return lowered


@dataclasses.dataclass(frozen=True)
class Setting:
    """One configurable value: its name, default (as text), cast and help."""

    name: str
    default: str
    cast: Callable[[str], Any]
    help: str

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


SETTINGS: tuple[Setting, ...] = (
    Setting("host", "127.0.0.1", str, "Address to bind. Use 0.0.0.0 only behind a firewall."),
    Setting("port", "8000", _port, "TCP port to listen on."),
    Setting(
        "redis_url",
        "",
        _redis_url,
        "Redis URL (redis://host:6379/0). Empty: one process with the in-memory broker.",
    ),
    Setting("workers", "1", _positive_int, "Worker processes. More than 1 needs a Redis URL."),
    Setting(
        "public_url",
        "",
        _public_url,
        "Base URL people and chargers use (behind a proxy). Empty: taken from each request.",
    ),
    Setting(
        "call_timeout",
        "30",
        _positive_seconds,
        "Seconds to wait for a charger's answer to a central-system call.",
    ),
    Setting(
        "manual_timeout",
        "120",
        _positive_seconds,
        "Seconds a held (manual) charger call waits for a person before its fallback.",
    ),
    Setting(
        "settings_ttl",
        "604800",
        _positive_int,
        "Seconds an identity's responder settings are kept after their last change.",
    ),
    Setting(
        "allowed_hosts",
        "",
        _host_list,
        "Extra Host names the dashboard, API and page sockets answer to (comma-separated); "
        "IP literals, localhost and the public URL's host are always allowed. Chargers may "
        "send any Host.",
    ),
    Setting(
        "list_chargers",
        "false",
        _bool,
        "List connected identities on the landing page even without a dashboard password "
        "(on a public lab an identity is the key to a charger's page).",
    ),
    Setting("replay_size", "200", int, "Recent frames kept in memory per charger for new pages."),
    Setting(
        "replay_bytes",
        "262144",
        _non_negative_int,
        "Bytes of recent frames kept per charger for new pages; larger frames are kept truncated.",
    ),
    Setting(
        "replay_total_bytes",
        "67108864",
        _non_negative_int,
        "Bytes of recent frames kept for all chargers of this process together.",
    ),
    Setting(
        "history_ttl",
        "3600",
        _seconds,
        "Seconds a charger's last connection (its recent frames, close code and reason) is "
        "kept in memory after it ends, for pages opened later; a stopped simulated charger "
        "can be started again for as long. 0: not kept.",
    ),
    Setting(
        "recording_limit",
        "16777216",
        _positive_int,
        "Characters one recording may hold; at the limit it stops, saying so.",
    ),
    Setting(
        "recording_ttl",
        "3600",
        _positive_seconds,
        "Seconds a recording is kept in memory after its last line, for download.",
    ),
    Setting("max_frame_size", "1048576", _positive_int, "Largest websocket frame accepted."),
    Setting(
        "rate_limit",
        "100",
        _positive_int,
        "Frames per second a charger may send before frames are refused (burst: twice).",
    ),
    Setting(
        "flood_disconnect",
        "10",
        _seconds,
        "Seconds a charger may stay over the rate limit before it is disconnected; 0: never.",
    ),
    Setting(
        "max_chargers",
        "10000",
        _positive_int,
        "Charger connections this process holds at once; more are refused with 503.",
    ),
    Setting(
        "max_pages",
        "1000",
        _positive_int,
        "Page live sockets this process serves at once (at most 32 from one address).",
    ),
    Setting("max_identity_length", "48", _positive_int, "Longest charger identity accepted."),
    Setting(
        "require_subprotocol",
        "false",
        _bool,
        "Refuse chargers that do not offer ocpp1.6 (default: accept them with a warning).",
    ),
    Setting(
        "ping_interval",
        "30",
        _seconds,
        "Seconds between websocket pings to chargers and pages; 0 disables pings.",
    ),
    Setting(
        "ping_timeout",
        "60",
        _seconds,
        "Seconds to wait for a pong before a connection is dropped.",
    ),
    Setting(
        "charger_password",
        "",
        _optional_text,
        "When set, chargers must use HTTP Basic auth (security profile 1): "
        "username = identity, password = this.",
    ),
    Setting(
        "charger_passwords",
        "",
        _existing_file,
        "JSON file mapping identity to password (security profile 1, one password per "
        "charger); checked before OCPPLAB_CHARGER_PASSWORD.",
    ),
    Setting(
        "dashboard_password",
        "",
        _optional_text,
        "When set, pages and the API ask for HTTP Basic auth with this password (any user).",
    ),
    Setting("max_simulated", "5", int, "Simulated chargers the dashboard may run at once."),
    Setting("log_level", "info", _log_level, "Server log level. Frames are never logged."),
    Setting("ssl_certfile", "", _existing_file, "TLS certificate file: serve wss:// directly."),
    Setting("ssl_keyfile", "", _existing_file, "TLS private key file."),
    Setting(
        "ssl_ca_certs",
        "",
        _existing_file,
        "CA bundle: require charger client certificates (security profile 3).",
    ),
)


@dataclasses.dataclass(frozen=True)
class Settings:
    """The running configuration; build it with `Settings.from_env` or keywords in tests."""

    host: str = "127.0.0.1"
    port: int = 8000
    redis_url: str | None = None
    workers: int = 1
    public_url: str | None = None
    call_timeout: float = 30.0
    manual_timeout: float = 120.0
    settings_ttl: int = 604800
    allowed_hosts: tuple[str, ...] = ()
    list_chargers: bool = False
    replay_size: int = 200
    replay_bytes: int = 262144
    replay_total_bytes: int = 67108864
    history_ttl: float = 3600.0
    recording_limit: int = 16777216
    recording_ttl: float = 3600.0
    max_frame_size: int = 1048576
    rate_limit: int = 100
    flood_disconnect: float = 10.0
    max_chargers: int = 10000
    max_pages: int = 1000
    max_identity_length: int = 48
    require_subprotocol: bool = False
    ping_interval: float = 30.0
    ping_timeout: float = 60.0
    charger_password: str | None = None
    charger_passwords: str | None = None
    dashboard_password: str | None = None
    max_simulated: int = 5
    log_level: str = "info"
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_ca_certs: str | None = None

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str], overrides: Mapping[str, str | None] | None = None
    ) -> Settings:
        """Cast every setting from `environ`; `overrides` (CLI flags, as text) win.

        Raises `ConfigError` naming the first setting whose value cannot be used.
        """
        values: dict[str, Any] = {}
        overrides = overrides or {}
        for setting in SETTINGS:
            override = overrides.get(setting.name)
            if override is not None:
                text, source = override, setting.flag
            else:
                text, source = environ.get(setting.env, setting.default), setting.env
            try:
                values[setting.name] = setting.cast(text.strip())
            except ValueError as exc:
                raise ConfigError(f"{source}={text!r}: {exc}") from None
        settings = cls(**values)
        settings.check()
        return settings

    def check(self) -> None:
        """Reject combinations of settings that cannot work together."""
        if self.workers > 1 and not self.redis_url:
            raise ConfigError(
                f"{ENV_PREFIX}WORKERS={self.workers} needs {ENV_PREFIX}REDIS_URL: worker "
                "processes share chargers and pages only through Redis"
            )
        if bool(self.ssl_certfile) != bool(self.ssl_keyfile):
            raise ConfigError(
                f"{ENV_PREFIX}SSL_CERTFILE and {ENV_PREFIX}SSL_KEYFILE must be set together"
            )
        if self.replay_size < 0:
            raise ConfigError(f"{ENV_PREFIX}REPLAY_SIZE must be 0 or more")
        if self.max_simulated < 0:
            raise ConfigError(f"{ENV_PREFIX}MAX_SIMULATED must be 0 or more")
