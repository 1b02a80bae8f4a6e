"""Proving a charger's identity before its websocket is accepted.

OCPP 1.6 security whitepaper (edition 2), section 2 "Secure connection setup":

- Profiles 1 and 2 (sections 2.3 and 2.4): HTTP Basic auth, username = the charger identity (the
  last segment of the URL, percent-decoded), password = its AuthorizationKey exactly as the
  charger sends it: a key configured as hex (`0011AABB…`) is that text, not the bytes it
  spells. A charger listed in `OCPPLAB_CHARGER_PASSWORDS` must use its own password; any
  other charger uses `OCPPLAB_CHARGER_PASSWORD` when that is set, and is refused when not.
- Profile 3 (section 2.5): the TLS handshake proves the charger holds a certificate signed
  by the configured CA; this module ties that certificate to the identity. Its subject's
  common name (CN, the whitepaper's "serial number of the Charge Point") must equal the
  identity, so a certificate for CP-A cannot connect as, or take over, CP-B. There is no
  mapping table: issue each charger a certificate with CN = its identity (`ocpplab certs`).

Passwords are compared with `hmac.compare_digest` on bytes, and a refusal reads the same
whether or not an identity is listed, so neither timing nor text tells which identities
exist. Failed attempts are slowed per source address (`throttle.FailedLogins`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import hmac
import json
from collections.abc import Mapping
from typing import Any

from ocpplab.config import Settings
from ocpplab.core.errors import ConfigError
from ocpplab.core.identity import identity_problem
from ocpplab.core.throttle import FailedLogins

PASSWORDS_SETTING = "OCPPLAB_CHARGER_PASSWORDS"
BASIC_CHALLENGE = {"WWW-Authenticate": 'Basic realm="ocpplab", charset="UTF-8"'}
NEEDS_BASIC = (
    "this central system needs HTTP Basic auth (OCPP security profile 1, or 2 over TLS): "
    "username = charger identity, password = the charger's AuthorizationKey"
)
NEEDS_CERTIFICATE = (
    "this central system needs a client certificate (OCPP security profile 3) whose common "
    "name (CN) is the charger identity"
)
# Compared against when an identity has no password, so a refusal takes the same time.
_NO_PASSWORD = b"\0" * 40
_SHOWN_NAME = 64  # characters of a certificate's CN repeated in a refusal


def load_passwords(path: str, max_identity_length: int) -> dict[str, bytes]:
    """Read the identity -> password file; ConfigError naming the setting when unusable."""

    def fail(problem: str) -> ConfigError:
        return ConfigError(f"{PASSWORDS_SETTING}={path!r}: {problem}")

    try:
        with open(path, "rb") as file:
            raw = file.read()
    except OSError as exc:
        raise fail(f"cannot be read ({exc.strerror})") from None
    try:
        data = json.loads(raw.decode("utf-8-sig"), object_pairs_hook=_refuse_duplicates)
    except UnicodeDecodeError:
        raise fail("is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise fail(f"is not JSON ({exc.msg}, line {exc.lineno} column {exc.colno})") from None
    except _DuplicateIdentity as exc:
        raise fail(f"lists {exc.args[0]!r} more than once") from None
    except RecursionError:
        raise fail("is not a flat JSON object (nested too deeply)") from None
    if not isinstance(data, dict):
        raise fail(
            'must be a JSON object mapping identity to password, like {"CP-1": "secret"}, '
            f"not a JSON {type(data).__name__}"
        )
    passwords: dict[str, bytes] = {}
    for identity, password in data.items():
        problem = identity_problem(identity, max_identity_length)
        if problem is None and ":" in identity:
            problem = "HTTP Basic auth cannot carry a ':' in a username"
        if problem is not None:
            raise fail(f"{identity!r} cannot be a charger identity: {problem}")
        if not isinstance(password, str) or not password:
            raise fail(f"the password of {identity!r} must be a non-empty string")
        try:
            passwords[identity] = password.encode("utf-8")
        except UnicodeEncodeError:
            raise fail(f"the password of {identity!r} is not valid text") from None
    return passwords


class _DuplicateIdentity(Exception):
    pass


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # A repeated key would silently keep only its last password.
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateIdentity(key)
        result[key] = value
    return result


def basic_credentials(authorization: str) -> tuple[bytes, bytes] | None:
    """(username, password) from an `Authorization` header value; None unless Basic."""
    scheme, _, encoded = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except binascii.Error:
        return None
    username, colon, password = decoded.partition(b":")
    return (username, password) if colon else None


def common_names(pem: str) -> list[str] | None:
    """The subject common names of a PEM certificate; None when it cannot be read."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    try:
        certificate = x509.load_pem_x509_certificate(pem.encode("ascii"))
        attributes = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    except ValueError:
        return None
    return [str(attribute.value) for attribute in attributes]


@dataclasses.dataclass(frozen=True)
class Refusal:
    """Why a request or handshake is refused, as the HTTP answer says it."""

    status: int
    reason: str
    headers: dict[str, str] | None = None


class ChargerCredentials:
    """Who may connect as which identity: passwords, client certificates, failed logins."""

    def __init__(
        self,
        *,
        shared_password: str | None = None,
        passwords: Mapping[str, bytes] | None = None,
        require_certificate: bool = False,
        failed_logins: FailedLogins | None = None,
    ) -> None:
        self._shared = shared_password.encode("utf-8") if shared_password else None
        self._passwords = dict(passwords) if passwords is not None else None
        self.require_certificate = require_certificate
        self.failed_logins = failed_logins or FailedLogins()

    @classmethod
    def from_settings(cls, settings: Settings) -> ChargerCredentials:
        """Read once at start-up; raises ConfigError when the passwords file is unusable."""
        passwords = None
        if settings.charger_passwords:
            passwords = load_passwords(settings.charger_passwords, settings.max_identity_length)
        return cls(
            shared_password=settings.charger_password,
            passwords=passwords,
            require_certificate=bool(settings.ssl_ca_certs),
        )

    @property
    def asks_password(self) -> bool:
        return self._shared is not None or self._passwords is not None

    @property
    def checks_anything(self) -> bool:
        return self.asks_password or self.require_certificate

    def password_problem(self, authorization: str, identity: str) -> str | None:
        """Why the `Authorization` header does not log `identity` in; None when it does."""
        if not self.asks_password:
            return None
        credentials = basic_credentials(authorization)
        if credentials is None:
            return NEEDS_BASIC
        username, password = credentials
        expected = self._expected(identity)
        # Compared even when there is no password to match, so that timing tells nothing.
        matches = hmac.compare_digest(password, expected or _NO_PASSWORD)
        if username != identity.encode("utf-8", "surrogatepass"):
            return (
                f"the HTTP Basic auth username must be the charger identity {identity!r}, "
                "as in the URL"
            )
        if expected is None or not matches:
            return (
                f"wrong password for charger {identity!r} (HTTP Basic auth, OCPP security "
                "profile 1: the password is the charger's AuthorizationKey as configured)"
            )
        return None

    def _expected(self, identity: str) -> bytes | None:
        if self._passwords is not None and identity in self._passwords:
            return self._passwords[identity]
        return self._shared

    def certificate_problem(self, tls: Mapping[str, Any] | None, identity: str) -> str | None:
        """Why the client certificate (ASGI TLS extension) is not `identity`'s, or None."""
        if not self.require_certificate:
            return None
        chain = list(tls.get("client_cert_chain") or ()) if tls else []
        if not chain:
            return NEEDS_CERTIFICATE
        names = common_names(str(chain[0]))
        if names is None:
            return "the client certificate could not be read"
        if len(names) != 1:
            return (
                "the client certificate must have exactly one common name (CN), the charger "
                f"identity; it has {len(names)}"
            )
        if names[0] != identity:
            shown = names[0][:_SHOWN_NAME] + ("…" if len(names[0]) > _SHOWN_NAME else "")
            return (
                f"the client certificate is for {shown!r}, not {identity!r} (OCPP security "
                "profile 3: its common name (CN) must be the charger identity)"
            )
        return None

    def problem(
        self, tls: Mapping[str, Any] | None, authorization: str, identity: str
    ) -> Refusal | None:
        """The refusal for these credentials, or None when they prove `identity`."""
        problem = self.certificate_problem(tls, identity)
        if problem is not None:
            return Refusal(403, problem)
        problem = self.password_problem(authorization, identity)
        if problem is not None:
            return Refusal(401, problem, BASIC_CHALLENGE)
        return None

    async def check(self, scope: Mapping[str, Any], identity: str) -> Refusal | None:
        """Check a charger's handshake; a failure waits (longer for each recent failure
        from the same address) before its refusal is returned."""
        if not self.checks_anything:
            return None
        tls = (scope.get("extensions") or {}).get("tls")
        refusal = self.problem(tls, _authorization(scope), identity)
        client = scope.get("client")
        source = str(client[0]) if client else "unknown"
        if refusal is None:
            self.failed_logins.succeeded(source)
            return None
        await asyncio.sleep(self.failed_logins.failed(source))
        return refusal


def _authorization(scope: Mapping[str, Any]) -> str:
    for name, value in scope.get("headers") or ():
        if name == b"authorization":
            return bytes(value).decode("latin-1")
    return ""
