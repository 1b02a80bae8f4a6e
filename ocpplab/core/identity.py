"""Charger identities: what the path may hold, and how a pasted URL is recognised."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit


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

    Installers paste whole URLs (QUIRKS.md): `ws://host/ocpp/CP-1` means `CP-1`. Of a URL
    with `/ocpp/` in its path, the identity is what follows it, all of it: the central
    system's own URL (`…/ocpp/`) then has none, and `…/ocpp/CP-1/extra` one with a `/`, and
    `identity_problem` says so, instead of a charger named `ocpp` or `extra`.
    """
    text = text.strip()
    if "://" in text:
        path = urlsplit(text).path
        _, marker, rest = path.partition("/ocpp/")
        if marker:
            text = unquote(rest.rstrip("/"))
        elif path.rstrip("/").endswith("/ocpp") or path == "/ocpp":
            text = ""
        else:
            text = unquote(path.rstrip("/").rsplit("/", 1)[-1])
    return text
