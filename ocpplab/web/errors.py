"""The one error -> HTTP mapping: which status and which words each of ocpplab's errors gets.

Views raise (or let through) the errors of `ocpplab.core.errors` and leave the answer to
this module. The JSON API answers `{"error": message, ...details}` with the statuses of
DESIGN.md's contract table (400 bad identity, 404 unknown action, 409 charger offline, 410
no longer held, 422 a payload or rule that cannot be used, 503 broker unavailable, 504
timeout); the dashboard says the same in a sentence next to the form, or as text where
there is no form. A CALLERROR is not an error of ours: the API relays it as a 502 itself.

The app registers `EXCEPTION_HANDLERS` (so an API view just raises); a dashboard view that
wants its refusal introduced ("Not saved: …") is wrapped with `text_errors`.
"""

from __future__ import annotations

import dataclasses
import functools
import html
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from starlette import responses
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from ocpplab.core.errors import (
    BrokerError,
    CallTimeout,
    ChargerOffline,
    InvalidBody,
    InvalidIdentity,
    InvalidRule,
    NoLongerHeld,
    NotFound,
    OcpplabError,
    RunInProgress,
    SchemaViolation,
    UnknownAction,
)
from ocpplab.core.frames import dumps_compact
from ocpplab.core.identity import identity_problem
from ocpplab.web.services import services_of

Kind = Literal["invalid", "unknown", "offline", "busy", "gone", "unavailable", "timeout"]
Endpoint = Callable[[Request], Awaitable[Response]]


@dataclasses.dataclass(frozen=True)
class Answer:
    """How one error class is answered: its status, its kind (for templates) and, when the
    error's own message is not a sentence for a person, the reason that introduces it."""

    status: int
    kind: Kind
    reason: str = ""


ANSWERS: dict[type[OcpplabError], Answer] = {
    InvalidIdentity: Answer(400, "invalid"),
    NotFound: Answer(404, "unknown"),
    ChargerOffline: Answer(409, "offline", "the charger is offline"),
    RunInProgress: Answer(409, "busy"),
    NoLongerHeld: Answer(410, "gone"),
    InvalidBody: Answer(422, "invalid"),
    InvalidRule: Answer(422, "invalid"),
    SchemaViolation: Answer(422, "invalid"),
    BrokerError: Answer(503, "unavailable", "the broker is unavailable"),
    CallTimeout: Answer(504, "timeout", "the charger did not answer in time"),
}
ANSWERED: tuple[type[OcpplabError], ...] = tuple(ANSWERS)


@dataclasses.dataclass(frozen=True)
class Refusal:
    """One error as answered: the status, the kind, the error's message and its details."""

    status: int
    kind: Kind
    message: str
    reason: str = ""
    details: dict[str, Any] = dataclasses.field(default_factory=dict)

    def sentence(self, not_done: str = "") -> str:
        """For a person: `Not saved: the broker is unavailable (Redis at … is unreachable)`."""
        text = f"{self.reason} ({self.message})" if self.reason else self.message
        return f"{not_done}: {text}" if not_done else text


def refusal(exc: OcpplabError) -> Refusal:
    """How `exc` is answered; the nearest class in `ANSWERS` decides (BrokerUnavailable is
    a BrokerError). An error that no view should let through raises `TypeError`."""
    for cls in type(exc).__mro__:
        answer = ANSWERS.get(cls)
        if answer is not None:
            return Refusal(answer.status, answer.kind, str(exc), answer.reason, _details(exc))
    raise TypeError(f"no HTTP answer for {type(exc).__name__}: {exc}") from exc


def _details(exc: OcpplabError) -> dict[str, Any]:
    """What the API adds next to `error`, so a script need not parse the message."""
    if isinstance(exc, UnknownAction) and exc.actions:
        return {"actions": list(exc.actions)}
    if isinstance(exc, SchemaViolation):
        return {"violations": exc.violations}
    if isinstance(exc, CallTimeout) and exc.unique_id is not None:
        return {"unique_id": exc.unique_id}
    return {}


class JSONResponse(responses.JSONResponse):
    """JSON as OCPP-J frames are written: a lone surrogate a charger sent is kept escaped.

    Starlette's encoder writes such a character raw, which cannot be encoded as UTF-8.
    """

    def render(self, content: Any) -> bytes:
        return dumps_compact(content).encode()


def json_error(status: int, message: str, **details: Any) -> JSONResponse:
    """The API's error body: `{"error": message, ...details}`."""
    return JSONResponse({"error": message, **details}, status_code=status)


def json_answer(exc: OcpplabError) -> JSONResponse:
    refused = refusal(exc)
    return json_error(refused.status, refused.message, **refused.details)


def text_answer(exc: OcpplabError, not_done: str = "") -> HTMLResponse:
    """The refusal as one escaped line: htmx swaps whatever comes back into the page as
    HTML, and a message may quote an identity, which may hold `<`."""
    refused = refusal(exc)
    return HTMLResponse(html.escape(refused.sentence(not_done)) + "\n", status_code=refused.status)


def text_errors(not_done: str = "") -> Callable[[Endpoint], Endpoint]:
    """Wrap a dashboard view without a form to show problems in: each error of `ANSWERS`
    becomes one line, introduced by `not_done` ("Not saved") when given."""

    def wrap(endpoint: Endpoint) -> Endpoint:
        @functools.wraps(endpoint)
        async def answered(request: Request) -> Response:
            try:
                return await endpoint(request)
            except ANSWERED as exc:
                return text_answer(exc, not_done)

        return answered

    return wrap


async def answer(request: Request, exc: Exception) -> Response:
    """Starlette exception handler: JSON under `/api/`, a line of text for the dashboard."""
    assert isinstance(exc, OcpplabError)
    if request.url.path.startswith("/api/"):
        return json_answer(exc)
    return text_answer(exc)


ExceptionHandler = Callable[[Request, Exception], Awaitable[Response]]
EXCEPTION_HANDLERS: dict[Any, ExceptionHandler] = dict.fromkeys(ANSWERS, answer)


def path_identity(request: Request) -> str:
    """The `{identity}` of the request's path; `InvalidIdentity` when no charger may have it."""
    identity: str = request.path_params["identity"]
    problem = identity_problem(identity, services_of(request).settings.max_identity_length)
    if problem:
        raise InvalidIdentity(problem)
    return identity
