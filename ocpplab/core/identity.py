"""Charger identities: what the path may hold, and how a pasted URL is recognised."""

from __future__ import annotations

from urllib.parse import quote, unquote, urlsplit

from starlette.convertors import Convertor, register_url_convertor


def identity_problem(identity: str, max_length: int) -> str | None:
    """Why `identity` (already percent-decoded) cannot be used, or None when it can."""
    if not identity:
        return (
            "no charger identity in the path: the charger must connect to "
            "/ocpp/{identity}, so the central-system URL ends with /ocpp/ and the "
            "charger appends its identity"
        )
    if "/" in identity:
        hint = " (was a whole URL pasted as the identity?)" if "://" in identity else ""
        return f"a charger identity cannot contain '/'{hint}"
    if len(identity) > max_length:
        return f"a charger identity has at most {max_length} characters, not {len(identity)}"
    if not identity.isprintable() or identity != identity.strip():
        return "a charger identity must be printable, without control characters or edge spaces"
    return None


def from_user_input(text: str) -> str:
    """What a person most likely meant by `text` in the identity box.

    Installers paste whole URLs (QUIRKS.md): `ws://host/ocpp/CP-1` means `CP-1`.
    """
    text = text.strip()
    if "://" in text:
        path = urlsplit(text).path.rstrip("/")
        text = unquote(path.rsplit("/", 1)[-1])
    return text


class IdentityConvertor(Convertor[str]):
    """`{identity:identity}` in a route: one path segment, percent-encoded in URLs we build.

    Starlette's default `str` convertor puts the text into URLs as it is, so an identity
    holding `#`, `?` or `%` would break the links, redirects and live-socket paths built
    from it. The server percent-decodes the path before matching, so `convert` has
    nothing left to undo.
    """

    regex = "[^/]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return quote(value, safe="")


# Registered once, where the convertor is defined, before any route is built. Unique ids
# of held calls may hold any character too, so they use the same one-segment convertor.
register_url_convertor("identity", IdentityConvertor())
register_url_convertor("segment", IdentityConvertor())
