"""Same-origin checks for form posts and the page socket (DESIGN.md, security)."""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.requests import HTTPConnection


def cross_site(connection: HTTPConnection, public_url: str | None = None) -> bool:
    """True when a request's Origin names another site (DESIGN.md: same-origin checks).

    Browsers send Origin with every POST and every websocket; a client that sends none is
    not a browser page, and could use the API anyway. Behind a proxy, the public URL's host
    is ours too. Used for form posts and the page socket alike.
    """
    origin = connection.headers.get("origin")
    if origin is None:
        return False
    ours = {connection.headers.get("host")}
    if public_url:
        ours.add(urlsplit(public_url).netloc)
    return urlsplit(origin).netloc not in ours
