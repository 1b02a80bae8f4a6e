"""Charger identity is proven, not claimed: per-charger passwords (security profile 1),
client certificate CN = identity (profile 3), failed logins slowed per source.

The rules are tested as pure functions with literal headers and certificates, and then
over real sockets against a real server.
"""

from __future__ import annotations

import base64
import datetime
import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import websockets
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from websockets.exceptions import InvalidStatus

from ocpplab.config import Settings
from ocpplab.core.errors import ConfigError
from ocpplab.server.credentials import (
    NEEDS_BASIC,
    NEEDS_CERTIFICATE,
    ChargerCredentials,
    basic_credentials,
    load_passwords,
)
from ocpplab.tools.cli import main
from tests.support import RunningServer, exchange, serve


def fresh(prefix: str = "CP") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def basic(username: str, password: bytes | str) -> str:
    raw = username.encode() + b":" + (password.encode() if isinstance(password, str) else password)
    return "Basic " + base64.b64encode(raw).decode()


def passwords_file(tmp_path: Path, content: Any) -> str:
    path = tmp_path / "passwords.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return str(path)


# The passwords file


def test_the_passwords_file_maps_identities_to_passwords(tmp_path: Path) -> None:
    path = passwords_file(tmp_path, {"CP-1": "secret-1", "CP 2": "sécret-2"})
    assert load_passwords(path, 48) == {"CP-1": b"secret-1", "CP 2": "sécret-2".encode()}


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (["CP-1", "secret"], "must be a JSON object mapping identity to password"),
        ('"CP-1"', "not a JSON str"),
        ("{'CP-1': 'secret'}", "is not JSON"),
        ('{"CP-1": "a", "CP-1": "b"}', "lists 'CP-1' more than once"),
        ({"CP-1": 1234}, "the password of 'CP-1' must be a non-empty string"),
        ({"CP-1": ""}, "must be a non-empty string"),
        ({"CP-1": {"password": "x"}}, "must be a non-empty string"),
        ({"a/b": "secret"}, "'a/b' cannot be a charger identity"),
        ({"CP:1": "secret"}, "cannot carry a ':'"),
        ({"x" * 49: "secret"}, "at most 48 characters"),
        ('{"CP-1": "\\ud800"}', "is not valid text"),
    ],
)
def test_a_passwords_file_that_is_not_such_an_object_stops_start_up(
    tmp_path: Path, content: Any, problem: str
) -> None:
    path = passwords_file(tmp_path, content)
    with pytest.raises(ConfigError) as error:
        ChargerCredentials.from_settings(Settings(charger_passwords=path))
    assert str(error.value).startswith(f"OCPPLAB_CHARGER_PASSWORDS={path!r}: ")
    assert problem in str(error.value)


def test_a_passwords_file_that_is_not_utf8_stops_start_up(tmp_path: Path) -> None:
    path = tmp_path / "passwords.json"
    path.write_bytes(b'{"CP-1": "\xff"}')
    with pytest.raises(ConfigError, match="is not UTF-8"):
        load_passwords(str(path), 48)


def test_the_cli_names_the_setting_and_stops_before_serving(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = passwords_file(tmp_path, ["not", "an", "object"])
    assert main(["--charger-passwords", path, "--port", "0"]) == 2
    error = capsys.readouterr().err
    assert "OCPPLAB_CHARGER_PASSWORDS" in error
    assert "must be a JSON object" in error


# Basic auth as pure functions (OCPP 1.6 security whitepaper, section 2.4)


def test_basic_credentials_are_read_from_the_header() -> None:
    assert basic_credentials(basic("CP-1", "k:ey")) == (b"CP-1", b"k:ey")
    assert basic_credentials("basic " + base64.b64encode(b"CP-1:").decode()) == (b"CP-1", b"")
    for header in (
        "",
        "Bearer abc",
        "Basic not-base64!",
        "Basic " + base64.b64encode(b"CP-1").decode(),
    ):
        assert basic_credentials(header) is None


PER_CHARGER = {"CP-1": b"own-password-1", "CP-2": b"0011AABBCCDDEEFF"}


def test_a_listed_charger_must_use_its_own_password_not_the_shared_one() -> None:
    credentials = ChargerCredentials(shared_password="shared", passwords=PER_CHARGER)
    assert credentials.password_problem(basic("CP-1", "own-password-1"), "CP-1") is None
    assert credentials.password_problem(basic("CP-1", "shared"), "CP-1") is not None
    assert credentials.password_problem(basic("CP-1", "own-password-2"), "CP-1") is not None
    # Someone else's password is not yours.
    assert credentials.password_problem(basic("CP-2", "own-password-1"), "CP-2") is not None


def test_an_unlisted_charger_uses_the_shared_password_when_there_is_one() -> None:
    both = ChargerCredentials(shared_password="shared", passwords=PER_CHARGER)
    assert both.password_problem(basic("CP-9", "shared"), "CP-9") is None
    assert both.password_problem(basic("CP-9", "own-password-1"), "CP-9") is not None
    only_file = ChargerCredentials(passwords=PER_CHARGER)
    assert only_file.password_problem(basic("CP-9", "shared"), "CP-9") is not None
    assert only_file.password_problem(basic("CP-9", ""), "CP-9") is not None
    assert ChargerCredentials(passwords={}).password_problem(basic("CP-9", ""), "CP-9")


def test_a_refusal_does_not_tell_whether_an_identity_is_listed() -> None:
    credentials = ChargerCredentials(passwords=PER_CHARGER)
    listed = credentials.password_problem(basic("CP-1", "guess"), "CP-1")
    unlisted = credentials.password_problem(basic("CP-X", "guess"), "CP-X")
    assert listed is not None
    assert unlisted is not None
    assert listed.replace("CP-1", "CP-X") == unlisted


def test_the_username_must_be_the_identity_and_a_hex_key_is_its_text() -> None:
    credentials = ChargerCredentials(passwords=PER_CHARGER)
    assert credentials.password_problem(basic("CP-2", "0011AABBCCDDEEFF"), "CP-2") is None
    key_bytes = bytes.fromhex("0011AABBCCDDEEFF")
    assert credentials.password_problem(basic("CP-2", key_bytes), "CP-2") is not None
    wrong_user = credentials.password_problem(basic("CP-1", "0011AABBCCDDEEFF"), "CP-2")
    assert wrong_user is not None
    assert "username must be the charger identity 'CP-2'" in wrong_user
    assert credentials.password_problem("", "CP-2") == NEEDS_BASIC
    # Nothing configured: nothing asked.
    assert ChargerCredentials().password_problem("", "CP-2") is None


def test_passwords_are_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every check goes through hmac.compare_digest on bytes, listed or not."""
    from ocpplab.server import credentials as module

    compared: list[tuple[bytes, bytes]] = []

    def compare_digest(a: bytes, b: bytes) -> bool:
        assert isinstance(a, bytes)
        assert isinstance(b, bytes)
        compared.append((a, b))
        return a == b

    monkeypatch.setattr(module.hmac, "compare_digest", compare_digest)
    credentials = ChargerCredentials(shared_password="shared", passwords=PER_CHARGER)
    assert credentials.password_problem(basic("CP-1", "own-password-1"), "CP-1") is None
    assert credentials.password_problem(basic("CP-9", "shared"), "CP-9") is None
    assert credentials.password_problem(basic("CP-8", "nope"), "CP-1") is not None
    assert len(compared) == 3


# Client certificates as pure functions (profile 3)


def certificate_pem(*common_names: str) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    # RFC 5280 caps a CN at 64 characters; a certificate is not bound to obey it.
    subject = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, name, _validate=False) for name in common_names]
    )
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def tls_with(pem: str | None) -> dict[str, Any]:
    return {"client_cert_chain": [pem] if pem else [], "tls_version": 0x0304}


def test_the_certificate_common_name_must_be_the_identity() -> None:
    credentials = ChargerCredentials(require_certificate=True)
    assert credentials.certificate_problem(tls_with(certificate_pem("CP-A")), "CP-A") is None
    mismatch = credentials.certificate_problem(tls_with(certificate_pem("CP-A")), "CP-B")
    assert mismatch is not None
    assert "the client certificate is for 'CP-A', not 'CP-B'" in mismatch
    # Case matters: identities are compared exactly, as the URL gives them.
    assert credentials.certificate_problem(tls_with(certificate_pem("cp-a")), "CP-A")


def test_a_certificate_with_no_or_several_common_names_proves_nothing() -> None:
    credentials = ChargerCredentials(require_certificate=True)
    two = credentials.certificate_problem(tls_with(certificate_pem("CP-A", "CP-B")), "CP-B")
    assert two is not None
    assert "exactly one common name" in two
    assert credentials.certificate_problem(tls_with(certificate_pem()), "CP-A") is not None
    assert credentials.certificate_problem(tls_with(None), "CP-A") == NEEDS_CERTIFICATE
    assert credentials.certificate_problem(None, "CP-A") == NEEDS_CERTIFICATE
    assert credentials.certificate_problem(tls_with("not a PEM"), "CP-A") is not None


@pytest.mark.filterwarnings("ignore:Attribute's length:UserWarning")
def test_a_long_common_name_is_cut_in_the_refusal() -> None:
    credentials = ChargerCredentials(require_certificate=True)
    problem = credentials.certificate_problem(tls_with(certificate_pem("A" * 60 + "B" * 4)), "x")
    assert problem is not None
    assert "A" * 60 + "BBBB" in problem
    long = credentials.certificate_problem(tls_with(certificate_pem("A" * 200)), "x")
    assert long is not None
    assert "A" * 65 not in long


def test_without_a_ca_no_certificate_is_asked_for() -> None:
    assert ChargerCredentials().certificate_problem(None, "CP-A") is None


# Over real sockets


async def refusal(url: str, **kwargs: Any) -> tuple[int, str, str]:
    with pytest.raises(InvalidStatus) as refused:
        await websockets.connect(url, subprotocols=["ocpp1.6"], **kwargs)  # type: ignore[list-item]
    response = refused.value.response
    body = bytes(response.body or b"").decode()
    return response.status_code, body, response.headers.get("WWW-Authenticate", "")


async def logs_in(server: RunningServer, identity: str, password: str) -> None:
    async with websockets.connect(
        server.charger_url(identity),
        subprotocols=["ocpp1.6"],  # type: ignore[list-item]
        additional_headers={"Authorization": basic(identity, password)},
    ) as charger:
        reply = await exchange(charger, [2, "hb", "Heartbeat", {}])
        assert reply[:2] == [3, "hb"]


async def test_per_charger_passwords_over_real_sockets(tmp_path: Path) -> None:
    listed, unlisted = fresh(), fresh()
    path = passwords_file(tmp_path, {listed: "own-password"})
    async with serve(Settings(charger_passwords=path, charger_password="shared")) as server:
        await logs_in(server, listed, "own-password")
        await logs_in(server, unlisted, "shared")
        auth = {"Authorization": basic(listed, "shared")}
        status, body, challenge = await refusal(server.charger_url(listed), additional_headers=auth)
        assert status == 401
        assert challenge.startswith("Basic")
        assert f"wrong password for charger {listed!r}" in body
        status, body, _ = await refusal(server.charger_url(listed))
        assert (status, body.strip()) == (401, NEEDS_BASIC)


async def test_with_only_the_file_an_unlisted_charger_is_refused_like_a_wrong_password(
    tmp_path: Path,
) -> None:
    listed, unlisted = fresh(), fresh()
    path = passwords_file(tmp_path, {listed: "own-password"})
    async with serve(Settings(charger_passwords=path)) as server:
        await logs_in(server, listed, "own-password")
        wrong = await refusal(
            server.charger_url(listed),
            additional_headers={"Authorization": basic(listed, "guess")},
        )
        unknown = await refusal(
            server.charger_url(unlisted),
            additional_headers={"Authorization": basic(unlisted, "guess")},
        )
    assert wrong[0] == unknown[0] == 401
    assert wrong[1].replace(listed, unlisted) == unknown[1]
    assert wrong[2] == unknown[2]


async def test_failed_charger_logins_are_slowed_per_source(tmp_path: Path) -> None:
    """FailedLogins: 0.25 s before the first refusal from a source, doubling after."""
    identity = fresh()
    async with serve(Settings(charger_password="right")) as server:
        failed_logins = server.app.state.services.gateway.credentials.failed_logins
        url = server.charger_url(identity)
        waits = []
        for _ in range(3):
            started = time.monotonic()
            await refusal(url, additional_headers={"Authorization": basic(identity, "wrong")})
            waits.append(time.monotonic() - started)
        assert waits[0] >= 0.2
        assert waits[2] >= 0.9  # 0.25, 0.5, 1.0 s: lower bounds hold on any machine
        assert len(failed_logins) == 1
        await logs_in(server, identity, "right")
        assert len(failed_logins) == 0  # a success forgets the source


def test_the_simulate_button_says_why_simulated_chargers_cannot_log_in(tmp_path: Any) -> None:
    from ocpplab.broker.memory import MemoryBroker
    from ocpplab.core.clock import SystemClock
    from ocpplab.dialects import DIALECTS
    from ocpplab.server.gateway import Gateway
    from ocpplab.tools.dashboard_chargers import Simulations

    passwords = tmp_path / "passwords.json"
    passwords.write_text('{"CP-1": "secret"}')
    server = ("127.0.0.1", 8000)

    def refusal(settings: Settings) -> str | None:
        simulations = Simulations(
            settings, Gateway(settings, MemoryBroker(), SystemClock(), DIALECTS), SystemClock()
        )
        code = simulations.refusal(server)
        return simulations.refusal_text(code) if code else None

    only_file = refusal(Settings(charger_passwords=str(passwords)))
    with_shared = refusal(Settings(charger_passwords=str(passwords), charger_password="pw"))
    certificates = refusal(Settings(ssl_ca_certs=str(passwords)))

    assert only_file is not None
    assert "OCPPLAB_CHARGER_PASSWORD" in only_file
    assert with_shared is None
    assert certificates is not None
    assert "client certificate" in certificates
