"""Opening a recording: an NDJSON file read back into the log view, for this page only.

The upload is read in memory (never spooled to a temporary file: OCPP traffic stays off
the disk), bounded by `OCPPLAB_RECORDING_LIMIT`, and parsed on the worker thread that
checks large payloads, so a big file does not stall chargers. Nothing of it is kept: the
page that shows it is all there is. A file that is not a recording is refused with the
number of the line that is wrong.
"""

from __future__ import annotations

from typing import Any

from markupsafe import Markup
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from ocpplab.core.frames import Call, InvalidFrame, message_type_name, parse
from ocpplab.core.messages import Connected, Disconnected, Event, FrameEvent, Notice
from ocpplab.core.recording import (
    Connected as ConnectedLine,
)
from ocpplab.core.recording import (
    Disconnected as DisconnectedLine,
)
from ocpplab.core.recording import (
    FrameLine,
    Recording,
    RecordingError,
    RulesChanged,
    Truncated,
    read_recording,
)
from ocpplab.core.responder import format_time
from ocpplab.web.services import Services, services_of
from ocpplab.web.templating import render_block

MAX_SHOWN = 2000  # entries rendered into one page; the rest is counted
UPLOAD_SLACK = 64 * 1024  # multipart framing around the file


def upload_limit(services: Services) -> int:
    """The largest upload taken: a recording's limit in characters, up to 4 bytes each."""
    return 4 * services.settings.recording_limit + UPLOAD_SLACK


class InMemoryParser(MultiPartParser):
    """Starlette's parser, keeping uploaded files in memory instead of a temporary file
    (its default spills a file of over 1 MiB to disk). The request guard bounds the body."""

    spool_max_size = 2**62


async def index(request: Request) -> Response:
    return _page(request, "recordings_index", status=200)


async def open_recording(request: Request) -> Response:
    services = services_of(request)
    try:
        parser = InMemoryParser(request.headers, request.stream(), max_files=1, max_fields=2)
        form = await parser.parse()
    except MultiPartException as exc:
        return _page(request, "recordings_index", status=400, error=str(exc))
    upload = form.get("recording")
    if upload is None or isinstance(upload, str):
        return _page(request, "recordings_index", status=422, error="Choose a recording file.")
    data = await upload.read()
    await upload.close()
    limit = upload_limit(services)
    max_frame = services.settings.max_frame_size

    def read() -> Recording | RecordingError:
        try:
            return read_recording(data, max_bytes=limit, max_frame_size=max_frame)
        except RecordingError as exc:
            return exc

    result = await services.gateway.checks.run(read)
    if result is None:
        error = "The server is busy reading other large files; try again in a moment."
        return _page(request, "recordings_index", status=503, error=error)
    if isinstance(result, RecordingError):
        error = f"{upload.filename or 'The file'} is not a recording ocpplab can open: {result}"
        return _page(request, "recordings_index", status=422, error=error)
    events = list(recording_events(result))
    shown = events[:MAX_SHOWN]
    entries = Markup("").join(
        Markup(render_block(services.templates, "charger.html", "log_entry", event=event))
        for event in shown
    )
    return _page(
        request,
        "recording_view",
        recording=result,
        filename=upload.filename or "recording.ndjson",
        entries=entries,
        shown=len(shown),
        total=len(events),
    )


def recording_events(recording: Recording) -> list[Event]:
    """The recording's lines as the log's events, oldest first."""
    events: list[Event] = []
    for number, line in enumerate(recording.lines, start=2):
        at = format_time(line.t)
        if isinstance(line, FrameLine):
            frame = parse(line.text)
            action = frame.action if isinstance(frame, Call) else None
            events.append(
                FrameEvent(
                    at=at,
                    session=line.session,
                    seq=number,
                    dir=line.dir,
                    type=message_type_name(frame),
                    action=action,
                    unique_id=getattr(frame, "unique_id", None),
                    raw=line.text,
                    note=frame.reason if isinstance(frame, InvalidFrame) else None,
                )
            )
        elif isinstance(line, ConnectedLine):
            events.append(
                Connected(
                    at=at,
                    session=line.session,
                    seq=number,
                    remote=line.remote or "unknown",
                    subprotocol=line.subprotocol,
                    tls=line.tls,
                )
            )
        elif isinstance(line, DisconnectedLine):
            code = line.code if line.code is not None else 1006
            events.append(
                Disconnected(at=at, session=line.session, seq=number, code=code, reason=line.reason)
            )
        elif isinstance(line, RulesChanged):
            rules = ", ".join(sorted((line.settings.get("rules") or {}).keys())) or "none"
            text = f"Answer rules changed (rules for: {rules})"
            events.append(Notice(at=at, seq=number, text=text))
        elif isinstance(line, Truncated):
            events.append(Notice(at=at, seq=number, text=f"Recording stopped: {line.reason}"))
    return events


def _page(request: Request, block: str, *, status: int = 200, **context: Any) -> HTMLResponse:
    services = services_of(request)
    return services.templates.TemplateResponse(
        request,
        "recordings.html",
        {"view": block, "error": context.pop("error", ""), **context},
        status_code=status,
    )


routes: list[BaseRoute] = [
    Route("/recordings", index, name="recordings"),
    Route("/recordings/open", open_recording, methods=["POST"], name="open_recording"),
]
