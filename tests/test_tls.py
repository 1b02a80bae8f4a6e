"""Security profiles 2 and 3 over real TLS sockets, with files made by `ocpplab certs`.

The server is the real app under uvicorn with the CLI's own options (`uvicorn_options`:
the hardened context, client certificates asked for with a CA); the chargers are
`websockets` clients with real `ssl.SSLContext`s.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import pickle
import ssl
import stat
import uuid
import warnings
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import websockets
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from websockets.exceptions import InvalidMessage, InvalidStatus

from ocpplab.config import Settings
from ocpplab.server import tls
from ocpplab.tools.cli import main, uvicorn_options
from tests.support import PageClient, RunningServer, exchange, serve

BOOT = {"chargePointVendor": "Vendor", "chargePointModel": "Model"}


def fresh(prefix: str = "CP") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


A, B = fresh("CP-A"), fresh("CP-B")


def make_certs(directory: Path, *args: str) -> str:
    """Run `ocpplab certs` itself; returns what it printed."""
    with contextlib.redirect_stdout(io.StringIO()) as output:
        assert main(["certs", str(directory), *args]) == 0
    return output.getvalue()


@pytest.fixture(scope="module")
def rsa_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("rsa")
    make_certs(directory, "--charger", A, "--charger", B, "--host", "127.0.0.1")
    return directory


@pytest.fixture(scope="module")
def ec_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("ec")
    make_certs(directory, "--charger", A, "--key-type", "ec", "--host", "127.0.0.1")
    return directory


@pytest.fixture(scope="module")
def other_ca_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another lab CA, which the server does not trust, with its own certificate for A."""
    directory = tmp_path_factory.mktemp("other")
    make_certs(directory, "--charger", A, "--host", "127.0.0.1")
    return directory


def profile2(directory: Path, **settings: Any) -> Settings:
    return Settings(
        ssl_certfile=str(directory / "server.pem"),
        ssl_keyfile=str(directory / "server.key"),
        **settings,
    )


def profile3(directory: Path, **settings: Any) -> Settings:
    return profile2(directory, ssl_ca_certs=str(directory / "ca.pem"), **settings)


def client_context(
    directory: Path,
    certificate: str | None = None,
    *,
    ciphers: str | None = None,
    version: ssl.TLSVersion | None = None,
    trust: Path | None = None,
) -> ssl.SSLContext:
    """A charger's TLS: trusts the lab CA, sends `certificate` (a charger's files) if given."""
    context = ssl.create_default_context(cafile=str((trust or directory) / "ca.pem"))
    if certificate is not None:
        context.load_cert_chain(
            str(directory / f"{certificate}.pem"), str(directory / f"{certificate}.key")
        )
    if version is not None:
        context.minimum_version = context.maximum_version = version
    if ciphers is not None:
        context.set_ciphers(ciphers)
    return context


def wss(server: RunningServer, path: str) -> str:
    return f"wss://127.0.0.1:{server.port}{path}"


@contextlib.asynccontextmanager
async def tls_charger(
    server: RunningServer, identity: str, context: ssl.SSLContext, **kwargs: Any
) -> AsyncIterator[Any]:
    async with websockets.connect(
        wss(server, f"/ocpp/{identity}"), ssl=context, subprotocols=["ocpp1.6"], **kwargs
    ) as connection:
        yield connection


def negotiated(connection: Any) -> tuple[str, str]:
    ssl_object = connection.transport.get_extra_info("ssl_object")
    return ssl_object.version(), ssl_object.cipher()[0]


async def refused_status(
    server: RunningServer, identity: str, context: ssl.SSLContext
) -> tuple[int, str]:
    with pytest.raises(InvalidStatus) as refused:
        await websockets.connect(
            wss(server, f"/ocpp/{identity}"), ssl=context, subprotocols=["ocpp1.6"]
        )
    response = refused.value.response
    return response.status_code, bytes(response.body or b"").decode()


async def handshake_fails(server: RunningServer, identity: str, context: ssl.SSLContext) -> None:
    """The TLS handshake itself fails: no HTTP answer at all, and no charger session.

    Over TLS 1.3 the client learns of a refused certificate only when it reads: then
    websockets reports "did not receive a valid HTTP response".
    """
    with pytest.raises((ssl.SSLError, OSError, InvalidMessage)) as failed:
        async with asyncio.timeout(10):
            await websockets.connect(
                wss(server, f"/ocpp/{identity}"), ssl=context, subprotocols=["ocpp1.6"]
            )
    assert not isinstance(failed.value, InvalidStatus)
    assert identity not in server.app.state.services.gateway.sessions


async def boots(connection: Any) -> None:
    reply = await exchange(connection, [2, "boot-1", "BootNotification", BOOT])
    assert reply[0] == 3
    assert reply[2]["status"] == "Accepted"


# Profile 3: the client certificate is the identity


async def test_a_charger_with_its_own_certificate_connects(rsa_dir: Path) -> None:
    async with (
        serve(profile3(rsa_dir)) as server,
        tls_charger(server, A, client_context(rsa_dir, A)) as charger,
    ):
        await boots(charger)


async def test_a_certificate_for_one_charger_is_refused_for_another_and_takes_nothing_over(
    rsa_dir: Path,
) -> None:
    async with (
        serve(profile3(rsa_dir)) as server,
        tls_charger(server, B, client_context(rsa_dir, B)) as charger_b,
    ):
        await boots(charger_b)
        status, body = await refused_status(server, B, client_context(rsa_dir, A))
        assert status == 403
        assert f"the client certificate is for {A!r}, not {B!r}" in body
        # B's own connection is untouched: still the session, still answered.
        reply = await exchange(charger_b, [2, "hb-after", "Heartbeat", {}])
        assert reply[:2] == [3, "hb-after"]
        assert server.app.state.services.gateway.sessions[B].websocket is not None


async def test_a_charger_without_a_certificate_is_refused_but_the_dashboard_opens(
    rsa_dir: Path,
) -> None:
    async with serve(profile3(rsa_dir)) as server:
        status, body = await refused_status(server, A, client_context(rsa_dir))
        assert status == 403
        assert "needs a client certificate (OCPP security profile 3)" in body
        assert A not in server.app.state.services.gateway.sessions
        # A browser has no charger certificate; pages over the same port still open.
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", server.port, ssl=client_context(rsa_dir), server_hostname="127.0.0.1"
        )
        writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        head = await reader.readline()
        writer.close()
        assert head.startswith(b"HTTP/1.1 200")


async def test_a_certificate_from_another_ca_fails_the_tls_handshake(
    rsa_dir: Path, other_ca_dir: Path
) -> None:
    foreign = client_context(other_ca_dir, A, trust=rsa_dir)
    async with serve(profile3(rsa_dir)) as server:
        await handshake_fails(server, A, foreign)


async def test_the_page_shows_tls_version_cipher_and_client_certificate(rsa_dir: Path) -> None:
    async with serve(profile3(rsa_dir)) as server:
        page_url = wss(server, f"/chargers/{A}/live")
        async with websockets.connect(page_url, ssl=client_context(rsa_dir)) as connection:
            page = PageClient(connection)
            await page.wait_for("Live updates: on")
            async with tls_charger(server, A, client_context(rsa_dir, A)) as charger:
                version, _ = negotiated(charger)
                status = await page.wait_for('id="status"')
                await boots(charger)
    assert version == "TLSv1.3"
    assert "Connected" in status
    assert "over TLSv1.3 (TLS_AES_256_GCM_SHA384)" in status
    assert f"client certificate CN={A},O=ocpplab lab" in status


async def test_a_reopened_page_shows_tls_12_suite_by_its_whitepaper_name(rsa_dir: Path) -> None:
    rsa_kex = client_context(rsa_dir, A, ciphers="AES256-GCM-SHA384", version=TLS12)
    async with (
        serve(profile3(rsa_dir)) as server,
        tls_charger(server, A, rsa_kex) as charger,
    ):
        await boots(charger)
        # A page opened after the charger gets the status from the replay.
        page_url = wss(server, f"/chargers/{A}/live")
        async with websockets.connect(page_url, ssl=client_context(rsa_dir)) as connection:
            status = await PageClient(connection).wait_for("over TLSv1.2")
    assert "(TLS_RSA_WITH_AES_256_GCM_SHA384)" in status


# Profile 2: TLS 1.2+ with the whitepaper's suites

TLS12 = ssl.TLSVersion.TLSv1_2


@pytest.mark.parametrize(
    "cipher", ["AES128-GCM-SHA256", "AES256-GCM-SHA384", "ECDHE-RSA-AES128-GCM-SHA256"]
)
async def test_tls12_rsa_suites_connect_to_an_rsa_certificate(rsa_dir: Path, cipher: str) -> None:
    """TLS_RSA_WITH_AES_128/256_GCM: required by the whitepaper, left out by Python."""
    async with (
        serve(profile2(rsa_dir, charger_password="key-0123456789abcdef")) as server,
        tls_charger(
            server,
            A,
            client_context(rsa_dir, ciphers=cipher, version=TLS12),
            additional_headers=basic(A, "key-0123456789abcdef"),
        ) as charger,
    ):
        assert negotiated(charger) == ("TLSv1.2", cipher)
        await boots(charger)


@pytest.mark.parametrize(
    "cipher", ["ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384"]
)
async def test_tls12_ecdsa_suites_connect_to_an_ec_certificate(ec_dir: Path, cipher: str) -> None:
    async with (
        serve(profile2(ec_dir)) as server,
        tls_charger(server, A, client_context(ec_dir, ciphers=cipher, version=TLS12)) as charger,
    ):
        assert negotiated(charger) == ("TLSv1.2", cipher)
        await boots(charger)


async def test_the_server_prefers_forward_secrecy_when_the_charger_offers_both(
    rsa_dir: Path,
) -> None:
    both = client_context(rsa_dir, ciphers="AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384")
    both.maximum_version = TLS12
    async with serve(profile2(rsa_dir)) as server, tls_charger(server, A, both) as charger:
        assert negotiated(charger) == ("TLSv1.2", "ECDHE-RSA-AES256-GCM-SHA384")


async def test_a_tls11_charger_is_refused(rsa_dir: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # that is the point
        old = client_context(rsa_dir, version=ssl.TLSVersion.TLSv1_1, ciphers="ALL:@SECLEVEL=0")
    async with serve(profile2(rsa_dir)) as server:
        await handshake_fails(server, A, old)


async def test_cbc_suites_are_not_offered(rsa_dir: Path) -> None:
    cbc = client_context(rsa_dir, version=TLS12, ciphers="ECDHE-RSA-AES128-SHA256:AES128-SHA")
    async with serve(profile2(rsa_dir)) as server:
        await handshake_fails(server, A, cbc)


def test_the_tls_options_reach_worker_processes(rsa_dir: Path) -> None:
    """`--workers` hands uvicorn's options to spawned processes: they must pickle."""
    options = uvicorn_options(profile3(rsa_dir))
    assert options["ssl_context_factory"] is tls.context_factory
    assert pickle.loads(pickle.dumps(options))["ssl_context_factory"] is tls.context_factory
    assert uvicorn_options(Settings())["ssl_context_factory"] is None


# `ocpplab certs`


def test_certs_writes_a_ca_server_and_charger_certificates(tmp_path: Path) -> None:
    printed = make_certs(
        tmp_path, "--charger", "CP-1", "--charger", "CP-2", "--host", "lab.example", "--host",
        "192.168.1.5",
    )  # fmt: skip
    names = {path.name for path in tmp_path.iterdir()}
    assert names == {
        f"{stem}.{suffix}" for stem in ("ca", "server", "CP-1", "CP-2") for suffix in ("pem", "key")
    }
    for key in tmp_path.glob("*.key"):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    ca = load(tmp_path / "ca.pem")
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    server = load(tmp_path / "server.pem")
    alt = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert alt.get_values_for_type(x509.DNSName) == ["lab.example"]
    assert [str(ip) for ip in alt.get_values_for_type(x509.IPAddress)] == ["192.168.1.5"]
    assert usages(server) == [ExtendedKeyUsageOID.SERVER_AUTH]
    for identity in ("CP-1", "CP-2"):
        client = load(tmp_path / f"{identity}.pem")
        cn = client.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        assert [attribute.value for attribute in cn] == [identity]
        assert usages(client) == [ExtendedKeyUsageOID.CLIENT_AUTH]
        assert client.issuer == ca.subject
    # It says how to start ocpplab with these very files, for both profiles.
    assert f"--ssl-certfile {tmp_path / 'server.pem'}" in printed
    assert f"--ssl-ca-certs {tmp_path / 'ca.pem'}" in printed
    assert "wss://lab.example:8000/ocpp/" in printed
    assert "--host 0.0.0.0" in printed


def test_certs_refuses_to_overwrite_without_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_certs(tmp_path, "--key-type", "ec")
    before = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    assert main(["certs", str(tmp_path)]) == 1
    assert "already holds ca.pem" in capsys.readouterr().err
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == before
    (tmp_path / "server.key").chmod(0o644)
    make_certs(tmp_path, "--force")
    assert (tmp_path / "ca.pem").read_bytes() != before["ca.pem"]
    assert stat.S_IMODE((tmp_path / "server.key").stat().st_mode) == 0o600


def test_certs_never_follows_a_symlink_even_with_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "precious"
    target.write_text("keep me")
    out = tmp_path / "out"
    out.mkdir()
    (out / "server.key").symlink_to(target)
    assert main(["certs", str(out), "--force"]) == 1
    assert "server.key" in capsys.readouterr().err
    assert target.read_text() == "keep me"
    assert sorted(path.name for path in out.iterdir()) == ["server.key"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--charger", "server"], "would overwrite server.pem"),
        (["--charger", "a/b"], "cannot contain '/'"),
        (["--charger", ".hidden"], "hidden"),
        (["--host", "https://lab.example"], "not a host name"),
        (["--days", "0"], "--days"),
    ],
)
def test_certs_refuses_bad_arguments_before_writing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert main(["certs", str(tmp_path / "out"), *args]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def usages(certificate: x509.Certificate) -> list[Any]:
    return list(certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


def basic(username: str, password: str) -> dict[str, str]:
    return {
        "Authorization": "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
    }
