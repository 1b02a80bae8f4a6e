"""TLS for chargers that connect with `wss://` (OCPP security profiles 2 and 3).

The OCPP 1.6 security whitepaper (edition 2, profiles 2 and 3, sections 2.4 and 2.5; the
OCTT checks it in TC_086_CSMS) requires TLS 1.2 or later, and a central system that supports
TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
TLS_RSA_WITH_AES_128_GCM_SHA256 and TLS_RSA_WITH_AES_256_GCM_SHA384: a charger must support
the ECDSA pair *or* the RSA pair, so a central system must offer both. Python's default
server context leaves out the RSA key-exchange suites (no forward secrecy), and older
uvicorn's default `ssl_ciphers` offered CBC and SHA-1 suites; so ocpplab names its own.

Which family a handshake can use follows the server's key: an RSA certificate serves the
RSA suites (and ECDHE-RSA), an EC certificate the ECDSA ones. TLS 1.3 suites are
OpenSSL's defaults (all AEAD).

This module also turns a finished handshake into the ASGI TLS extension
(`scope["extensions"]["tls"]`, asgiref's specs/tls.rst), so the app sees the version,
cipher suite and client certificate without reaching into the transport.
"""

from __future__ import annotations

import dataclasses
import ssl
from collections.abc import Callable
from typing import Any


@dataclasses.dataclass(frozen=True)
class Suite:
    """A TLS 1.2 cipher suite: its IANA code point, OpenSSL name and IANA name."""

    code: int
    openssl: str
    iana: str


# In the server's order of preference (forward secrecy first).
TLS12_SUITES: tuple[Suite, ...] = (
    Suite(0xC02B, "ECDHE-ECDSA-AES128-GCM-SHA256", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"),
    Suite(0xC02C, "ECDHE-ECDSA-AES256-GCM-SHA384", "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"),
    Suite(0xC02F, "ECDHE-RSA-AES128-GCM-SHA256", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"),
    Suite(0xC030, "ECDHE-RSA-AES256-GCM-SHA384", "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"),
    Suite(0x009C, "AES128-GCM-SHA256", "TLS_RSA_WITH_AES_128_GCM_SHA256"),
    Suite(0x009D, "AES256-GCM-SHA384", "TLS_RSA_WITH_AES_256_GCM_SHA384"),
)
TLS13_SUITES: tuple[Suite, ...] = (
    Suite(0x1301, "TLS_AES_128_GCM_SHA256", "TLS_AES_128_GCM_SHA256"),
    Suite(0x1302, "TLS_AES_256_GCM_SHA384", "TLS_AES_256_GCM_SHA384"),
    Suite(0x1303, "TLS_CHACHA20_POLY1305_SHA256", "TLS_CHACHA20_POLY1305_SHA256"),
)
# The OpenSSL cipher string for TLS 1.2 (TLS 1.3 suites are configured apart from it).
CIPHERS = ":".join(suite.openssl for suite in TLS12_SUITES)

_BY_OPENSSL = {suite.openssl: suite for suite in TLS12_SUITES + TLS13_SUITES}
_BY_CODE = {suite.code: suite for suite in TLS12_SUITES + TLS13_SUITES}
VERSIONS = {"TLSv1": 0x0301, "TLSv1.1": 0x0302, "TLSv1.2": 0x0303, "TLSv1.3": 0x0304}
_VERSION_NAMES = {code: name for name, code in VERSIONS.items()}


def harden(context: ssl.SSLContext) -> ssl.SSLContext:
    """Restrict a server context to TLS 1.2+ and the suites above, server's order first."""
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(CIPHERS)
    context.options |= (
        ssl.OP_CIPHER_SERVER_PREFERENCE | ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    )
    return context


def context_factory(config: Any, default: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
    """uvicorn's `ssl_context_factory`: its own context (certificate, key, CA, client
    certificate mode from the `ssl_*` options), hardened.

    A module-level function, so that `--workers` can pass it to its worker processes.
    """
    return harden(default())


def version_code(name: str | None) -> int | None:
    """`ssl.SSLObject.version()`'s name as the TLS protocol version number (0x0303 ...)."""
    return VERSIONS.get(name) if name else None


def version_name(code: int | None) -> str:
    if code is None:
        return "unknown"
    return _VERSION_NAMES.get(code, f"0x{code:04X}")


def suite_code(openssl_name: str, context: ssl.SSLContext | None = None) -> int | None:
    """The IANA code point of a suite named as OpenSSL names it, None when unknown."""
    suite = _BY_OPENSSL.get(openssl_name)
    if suite is not None:
        return suite.code
    for cipher in context.get_ciphers() if context is not None else ():
        if cipher["name"] == openssl_name:
            code: int = cipher["id"] & 0xFFFF
            return code
    return None


def suite_name(code: int | None) -> str:
    """The IANA name of a suite we offer (as the whitepaper names it), else its code."""
    if code is None:
        return "unknown"
    suite = _BY_CODE.get(code)
    return suite.iana if suite is not None else f"0x{code:04X}"


def asgi_extension(ssl_object: ssl.SSLObject) -> dict[str, Any]:
    """The ASGI TLS extension for a finished handshake (asgiref specs/tls.rst, v0.2).

    `server_cert` is None (the spec allows it: the SSL object does not expose our own
    certificate). `client_cert_chain` holds the client's certificate only: Python 3.11
    gives no access to the rest of the chain it sent. An unverified client certificate
    never gets here (the handshake fails first), so `client_cert_error` is None.
    """
    cipher = ssl_object.cipher()
    der = ssl_object.getpeercert(binary_form=True)
    chain = [ssl.DER_cert_to_PEM_cert(der)] if der else []
    return {
        "server_cert": None,
        "client_cert_chain": chain,
        "client_cert_name": subject_name(der) if der else None,
        "client_cert_error": None,
        "tls_version": version_code(ssl_object.version()),
        "cipher_suite": suite_code(cipher[0], ssl_object.context) if cipher else None,
    }


def subject_name(der: bytes) -> str | None:
    """A certificate's subject as an RFC 4514 string, None when it cannot be read."""
    from cryptography import x509

    try:
        return x509.load_der_x509_certificate(der).subject.rfc4514_string()
    except ValueError:
        return None


SHOWN_SUBJECT = 200  # characters of a client certificate's subject shown on the page


def summary(extension: Any) -> dict[str, str | None] | None:
    """What a charger's page shows of its TLS: version, suite, client certificate subject.

    None for a connection without TLS (no extension: ASGI servers give it only over TLS).
    """
    if not isinstance(extension, dict):
        return None
    subject = extension.get("client_cert_name")
    if isinstance(subject, str) and len(subject) > SHOWN_SUBJECT:
        subject = subject[:SHOWN_SUBJECT] + "…"
    return {
        "version": version_name(extension.get("tls_version")),
        "cipher": suite_name(extension.get("cipher_suite")),
        "client_subject": subject if isinstance(subject, str) else None,
    }
