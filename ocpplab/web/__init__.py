"""The web layer: pages, forms, the JSON API, the page's live socket, one guard, one error
mapping, templates.

Importing it registers the `{identity:identity}` and `{x:segment}` path convertors with
Starlette (whose registry is global: routes are matched by name at import time).
"""

from __future__ import annotations

from urllib.parse import quote

from starlette.convertors import Convertor, register_url_convertor


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
