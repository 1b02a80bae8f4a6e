"""`ocpplab certs DIR` — a lab CA, a server certificate and charger client certificates.

So that security profiles 2 (TLS + Basic auth) and 3 (client certificates) of the OCPP 1.6
security whitepaper can be tried in minutes, without an openssl recipe:

- `ca.pem` / `ca.key`: a lab certificate authority (the charger trusts `ca.pem` as its
  "CentralSystemRootCertificate"; ocpplab trusts it for client certificates);
- `server.pem` / `server.key`: ocpplab's certificate, serverAuth, with a subjectAltName for
  every `--host` (CN = the first one: OCTT's TC_086 expects the server's name there);
- `<identity>.pem` / `<identity>.key` per `--charger`: clientAuth, CN = the identity, as
  profile 3 requires (ocpplab refuses a certificate whose CN is not the identity).

Keys are RSA 2048 (the RSA suites, which every charger may fall back to) or EC P-256 (the
ECDHE-ECDSA suites) with `--key-type ec`, unencrypted, written with mode 0600. Nothing is
overwritten without `--force`. `cryptography` is imported only when the command runs.
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import os
import secrets
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ocpplab.config import Settings
from ocpplab.core.identity import identity_problem

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes

KEY_TYPES = ("rsa", "ec")
DEFAULT_HOSTS = ("localhost", "127.0.0.1", "::1")
DEFAULT_CHARGERS = ("CP-1",)
RESERVED = {"ca", "server"}  # identities whose files would collide with the CA's or server's
# Chargers' clocks are often wrong until they reach a time server or a Heartbeat answer.
BACKDATE = datetime.timedelta(days=1)
ORGANIZATION = "ocpplab lab"
CA_DAYS = 3650


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Make a lab CA, a server certificate and charger client certificates for OCPP "
        "security profiles 2 and 3."
    )
    parser.add_argument("directory", metavar="DIR", help="where to write the files")
    parser.add_argument(
        "--charger",
        action="append",
        metavar="IDENTITY",
        help=f"a charger identity to make a client certificate for (repeatable; default "
        f"{', '.join(DEFAULT_CHARGERS)})",
    )
    parser.add_argument(
        "--host",
        action="append",
        metavar="NAME",
        help="a host name or IP address chargers use to reach ocpplab (repeatable; default "
        f"{', '.join(DEFAULT_HOSTS)})",
    )
    parser.add_argument("--key-type", choices=KEY_TYPES, default="rsa", help="default rsa")
    parser.add_argument(
        "--days", type=int, default=365, help="validity of the certificates (default 365)"
    )
    parser.add_argument("--port", type=int, default=8000, help="port shown in the how-to")
    parser.add_argument("--force", action="store_true", help="overwrite existing files")


@dataclass(frozen=True)
class Plan:
    """What `ocpplab certs` makes, checked before anything is written."""

    directory: Path
    chargers: tuple[str, ...]
    hosts: tuple[str, ...]
    key_type: str
    days: int

    @property
    def files(self) -> list[Path]:
        names = ["ca", "server", *self.chargers]
        return [self.directory / f"{name}{suffix}" for name in names for suffix in (".pem", ".key")]


def plan_from(args: argparse.Namespace) -> Plan:
    """The arguments as a Plan; ValueError saying what is wrong."""
    chargers = tuple(dict.fromkeys(args.charger or DEFAULT_CHARGERS))
    max_length = Settings().max_identity_length
    for identity in chargers:
        problem = identity_problem(identity, max_length)
        if problem is None and identity.lower() in RESERVED:
            problem = f"its files would overwrite {identity.lower()}.pem"
        if problem is None and identity.startswith("."):
            problem = "its files would be hidden (the identity starts with '.')"
        if problem is not None:
            raise ValueError(f"--charger {identity!r}: {problem}")
    hosts = tuple(dict.fromkeys(host.strip().strip("[]") for host in args.host or DEFAULT_HOSTS))
    for host in hosts:
        if not _is_ip(host) and (not host or any(char in host for char in "/:@ *")):
            raise ValueError(f"--host {host!r} is not a host name or IP address")
        if not _is_ip(host) and not host.isascii():
            raise ValueError(f"--host {host!r}: write an international name as xn--… (IDNA)")
    if not 1 <= args.days <= 3650:
        raise ValueError("--days must be between 1 and 3650")
    return Plan(Path(args.directory), chargers, hosts, args.key_type, args.days)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _is_loopback(host: str) -> bool:
    return _is_ip(host) and ipaddress.ip_address(host).is_loopback


def run(args: argparse.Namespace) -> int:
    try:
        plan = plan_from(args)
    except ValueError as exc:
        print(f"ocpplab certs: {exc}", file=sys.stderr)
        return 2
    links = [path.name for path in plan.files if path.is_symlink()]
    if links:
        print(
            f"ocpplab certs: {', '.join(links)} in {plan.directory} is a symbolic link, which "
            "is never followed; nothing was written",
            file=sys.stderr,
        )
        return 1
    existing = [path for path in plan.files if path.exists()]
    if existing and not args.force:
        names = ", ".join(path.name for path in existing)
        print(
            f"ocpplab certs: {plan.directory} already holds {names}; nothing was written "
            "(--force overwrites them)",
            file=sys.stderr,
        )
        return 1
    try:
        plan.directory.mkdir(parents=True, exist_ok=True)
        make(plan)
    except OSError as exc:
        print(f"ocpplab certs: could not write into {plan.directory}: {exc}", file=sys.stderr)
        return 1
    print(how_to(plan, args.port))
    return 0


def make(plan: Plan) -> None:
    """Write the CA, the server certificate and one client certificate per charger."""
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID

    now = datetime.datetime.now(datetime.UTC)
    rsa = plan.key_type == "rsa"
    ca_key = _new_key(plan.key_type)
    ca_name = _name("ocpplab lab CA")
    ca = _certificate(
        ca_name,
        ca_name,
        ca_key,
        ca_key,
        now,
        max(CA_DAYS, plan.days),
        [
            (x509.BasicConstraints(ca=True, path_length=0), True),
            (_key_usage(ca=True), True),
        ],
    )
    _write(plan.directory / "ca", ca, ca_key)
    server_key = _new_key(plan.key_type)
    alt_names = [
        x509.IPAddress(ipaddress.ip_address(host)) if _is_ip(host) else x509.DNSName(host)
        for host in plan.hosts
    ]
    server = _certificate(
        _name(plan.hosts[0]),
        ca_name,
        server_key,
        ca_key,
        now,
        plan.days,
        [
            (x509.BasicConstraints(ca=False, path_length=None), True),
            (_key_usage(rsa=rsa), True),
            (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False),
            (x509.SubjectAlternativeName(alt_names), False),
        ],
        issuer_certificate=ca,
    )
    _write(plan.directory / "server", server, server_key)
    for identity in plan.chargers:
        key = _new_key(plan.key_type)
        certificate = _certificate(
            _name(identity),
            ca_name,
            key,
            ca_key,
            now,
            plan.days,
            [
                (x509.BasicConstraints(ca=False, path_length=None), True),
                (_key_usage(rsa=rsa), True),
                (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False),
            ],
            issuer_certificate=ca,
        )
        _write(plan.directory / identity, certificate, key)


def _new_key(key_type: str) -> CertificateIssuerPrivateKeyTypes:
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    if key_type == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _name(common_name: str) -> x509.Name:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    # The whitepaper puts the operator in O and the charger's identity in CN.
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _key_usage(*, ca: bool = False, rsa: bool = False) -> x509.KeyUsage:
    from cryptography import x509

    # RSA key exchange (TLS_RSA_WITH_AES_*_GCM_*) encrypts to the server's key.
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=rsa,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _certificate(
    subject: x509.Name,
    issuer: x509.Name,
    key: CertificateIssuerPrivateKeyTypes,
    issuer_key: CertificateIssuerPrivateKeyTypes,
    now: datetime.datetime,
    days: int,
    extensions: Sequence[tuple[x509.ExtensionType, bool]],
    issuer_certificate: x509.Certificate | None = None,
) -> x509.Certificate:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    )
    if issuer_certificate is not None:
        identifier = issuer_certificate.extensions.get_extension_for_class(
            x509.SubjectKeyIdentifier
        ).value
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(identifier), False
        )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical)
    return builder.sign(issuer_key, hashes.SHA256())


def _write(
    stem: Path, certificate: x509.Certificate, key: CertificateIssuerPrivateKeyTypes
) -> None:
    from cryptography.hazmat.primitives import serialization

    pem = certificate.public_bytes(serialization.Encoding.PEM)
    _write_file(stem.with_name(stem.name + ".pem"), pem, 0o644)
    key_bytes = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write_file(stem.with_name(stem.name + ".key"), key_bytes, 0o600)


def _write_file(path: Path, data: bytes, mode: int) -> None:
    # Created with its mode (a key is never readable by others, not even for a moment);
    # a file that --force overwrites gets the mode too. A symlink in its place is not
    # followed: --force must not truncate whatever it points to.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
    with os.fdopen(descriptor, "wb") as file:
        os.fchmod(file.fileno(), mode)
        file.write(data)


def how_to(plan: Plan, port: int) -> str:
    """What to run and what to configure on the charger, with these very files."""
    directory = plan.directory.resolve()

    def path(name: str) -> str:
        return shlex.quote(str(directory / name))

    host = plan.hosts[0]
    url_host = f"[{host}]" if ":" in host else host
    loopback = all(name == "localhost" or _is_loopback(name) for name in plan.hosts)
    listen = "127.0.0.1" if loopback else "0.0.0.0"
    tls = f"--ssl-certfile {path('server.pem')} --ssl-keyfile {path('server.key')}"
    key = secrets.token_hex(10)
    first = plan.chargers[0]
    suites = (
        "TLS_RSA_WITH_AES_128/256_GCM and ECDHE-RSA"
        if plan.key_type == "rsa"
        else "TLS_ECDHE_ECDSA_WITH_AES_128/256_GCM"
    )
    files = ", ".join(path.name for path in plan.files)
    return "\n".join(
        [
            f"ocpplab certs: wrote {files} into {directory}",
            f"  ({plan.key_type.upper()} keys, {suites} suites over TLS 1.2, and TLS 1.3; "
            f"server certificate for {', '.join(plan.hosts)}; valid {plan.days} days)",
            "",
            "Security profile 2 (TLS + HTTP Basic auth):",
            f"  ocpplab --host {listen} --port {port} {tls} --charger-password {key}",
            "  On the charger:",
            f"    central system URL   wss://{url_host}:{port}/ocpp/   (the identity is appended)",
            f"    trusted root CA      {path('ca.pem')}   (InstallCertificate "
            "CentralSystemRootCertificate, or the charger's web page)",
            f"    AuthorizationKey     {key}   (example: any key works if ocpplab has it)",
            "    SecurityProfile      2",
            "",
            "Security profile 3 (TLS + client certificates, CN = identity):",
            f"  ocpplab --host {listen} --port {port} {tls} --ssl-ca-certs {path('ca.pem')}",
            "  On each charger (here " + ", ".join(plan.chargers) + "):",
            "    central system URL and trusted root CA as above",
            f"    client certificate   {path(first + '.pem')} with key "
            f"{path(first + '.key')}   (for {first}; each charger its own)",
            "    SecurityProfile      3",
            "",
            "Check the TLS handshake without a charger:",
            f"  openssl s_client -connect {url_host}:{port} -CAfile {path('ca.pem')} "
            f"-cert {path(first + '.pem')} -key {path(first + '.key')} </dev/null",
        ]
    )
