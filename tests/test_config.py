"""Settings: each bad value stops start-up with a message naming it; the README lists them all.

Start-up is tested as a person runs it, `python -m ocpplab` in a subprocess.

The README's settings table is checked against `ocpplab.config.SETTINGS`; after changing a
setting, print the table to paste with `python -m tests.test_config`.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from ocpplab.config import SETTINGS, Settings
from ocpplab.core.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
TABLE_START = "<!-- settings table: generated from ocpplab.config.SETTINGS -->"
TABLE_END = "<!-- end of settings table -->"


def settings_table() -> str:
    """The README's settings table, as Markdown, from `SETTINGS`."""
    lines = [
        "| Environment variable | Flag | Default | What it does |",
        "| --- | --- | --- | --- |",
    ]
    for setting in SETTINGS:
        default = f"`{setting.default}`" if setting.default else "(empty)"
        help_text = setting.help.replace("|", "\\|")
        lines.append(f"| `{setting.env}` | `{setting.flag}` | {default} | {help_text} |")
    return "\n".join(lines)


def run_ocpplab(
    *args: str, env: dict[str, str] | None = None, timeout: float = 20
) -> subprocess.CompletedProcess[str]:
    environ = {key: value for key, value in os.environ.items() if not key.startswith("OCPPLAB_")}
    return subprocess.run(
        [sys.executable, "-m", "ocpplab", *args],
        env={**environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        check=False,
    )


# One bad value for every setting whose value is checked.
BAD_VALUES: list[tuple[str, str, str]] = [
    ("port", "eighty", "invalid literal"),
    ("recording_limit", "0", "at least 1"),
    ("recording_ttl", "0", "more than 0"),
    ("history_ttl", "-1", "0 or more"),
    ("port", "70000", "between 0 and 65535"),
    ("redis_url", "http://127.0.0.1:6379", "redis://"),
    ("workers", "0", "at least 1"),
    ("public_url", "ocpp.example.com", "absolute URL"),
    ("call_timeout", "0", "more than 0"),
    ("call_timeout", "soon", "could not convert"),
    ("manual_timeout", "-5", "0 or more"),
    ("settings_ttl", "1.5", "invalid literal"),
    ("replay_size", "lots", "invalid literal"),
    ("max_frame_size", "0", "at least 1"),
    ("rate_limit", "-1", "at least 1"),
    ("max_identity_length", "0", "at least 1"),
    ("require_subprotocol", "maybe", "true or false"),
    ("ping_interval", "nan", "number of seconds"),
    ("ping_timeout", "inf", "number of seconds"),
    ("max_simulated", "some", "invalid literal"),
    ("log_level", "loud", "one of critical"),
    ("ssl_certfile", "/nonexistent/cert.pem", "no such file"),
    ("ssl_keyfile", "/nonexistent/key.pem", "no such file"),
    ("ssl_ca_certs", "/nonexistent/ca.pem", "no such file"),
    ("allowed_hosts", "lab.example.com,http://evil.example", "not a host name"),
    ("list_chargers", "perhaps", "true or false"),
    ("replay_bytes", "-1", "0 or more"),
    ("replay_total_bytes", "big", "invalid literal"),
    ("flood_disconnect", "-3", "0 or more"),
    ("max_chargers", "0", "at least 1"),
    ("max_pages", "none", "invalid literal"),
    ("charger_passwords", "/nonexistent/passwords.json", "no such file"),
]
# Free text: any value is usable, so there is nothing to refuse.
UNCHECKED = {"host", "charger_password", "dashboard_password"}


def test_every_checked_setting_has_a_bad_value_tested() -> None:
    tested = {name for name, _, _ in BAD_VALUES}

    assert tested | UNCHECKED == {setting.name for setting in SETTINGS}


@pytest.mark.parametrize(("name", "value", "reason"), BAD_VALUES)
def test_a_bad_environment_value_stops_start_up_naming_it(
    name: str, value: str, reason: str
) -> None:
    env = f"OCPPLAB_{name.upper()}"

    result = run_ocpplab(env={env: value})

    assert result.returncode != 0
    assert result.stderr.startswith(f"ocpplab: {env}={value!r}: ")
    assert reason in result.stderr
    assert "Traceback" not in result.stderr


def test_a_bad_flag_is_named_as_the_flag() -> None:
    result = run_ocpplab("--port", "eighty", env={"OCPPLAB_PORT": "8000"})

    assert result.returncode != 0
    assert "--port='eighty'" in result.stderr


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"OCPPLAB_WORKERS": "2"}, "OCPPLAB_WORKERS=2 needs OCPPLAB_REDIS_URL"),
        ({"OCPPLAB_REPLAY_SIZE": "-1"}, "OCPPLAB_REPLAY_SIZE must be 0 or more"),
        ({"OCPPLAB_MAX_SIMULATED": "-1"}, "OCPPLAB_MAX_SIMULATED must be 0 or more"),
        ({"OCPPLAB_REDIS_URL": "redis://127.0.0.1:1/0"}, "127.0.0.1:1"),
    ],
)
def test_settings_that_cannot_work_stop_start_up(env: dict[str, str], needle: str) -> None:
    result = run_ocpplab(env=env)

    assert result.returncode != 0
    assert needle in result.stderr
    assert "Traceback" not in result.stderr


def test_certificate_and_key_go_together(tmp_path: Path) -> None:
    certificate = tmp_path / "cert.pem"
    certificate.write_text("not really a certificate")

    with pytest.raises(ConfigError, match="SSL_CERTFILE and OCPPLAB_SSL_KEYFILE"):
        Settings.from_env({"OCPPLAB_SSL_CERTFILE": str(certificate)})


def test_the_defaults_in_the_table_are_the_defaults_in_the_code() -> None:
    assert Settings.from_env({}) == Settings()


def test_flags_override_the_environment() -> None:
    settings = Settings.from_env({"OCPPLAB_PORT": "9000"}, {"port": "9001", "host": None})

    assert (settings.port, settings.host) == (9001, "127.0.0.1")


def test_the_readme_settings_table_lists_exactly_the_settings() -> None:
    text = README.read_text("utf-8")
    assert TABLE_START in text, f"README.md needs the marker {TABLE_START!r}"
    table = text.split(TABLE_START, 1)[1].split(TABLE_END, 1)[0].strip()

    assert table == settings_table(), "regenerate it with: python -m tests.test_config"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_the_readme_run_command_starts_a_server_on_127_0_0_1() -> None:
    port = free_port()
    environ = {key: value for key, value in os.environ.items() if not key.startswith("OCPPLAB_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "ocpplab", "--port", str(port), "--log-level", "warning"],
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        answer = None
        for _ in range(100):
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        assert answer is not None, "ocpplab did not answer on 127.0.0.1"
        assert answer.status_code == 200
        landing = httpx.get(f"http://127.0.0.1:{port}/")
        assert f"ws://127.0.0.1:{port}/ocpp/" in landing.text
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=10)
    assert f"dashboard http://127.0.0.1:{port}/" in stderr
    assert "broker in-memory" in stderr


if __name__ == "__main__":
    print(settings_table())
