"""Opening a recording: an NDJSON file read back into the log view, for this page only.

The upload is read in memory (never spooled to a temporary file: OCPP traffic stays off
the disk), bounded by `OCPPLAB_RECORDING_LIMIT`, and parsed on the worker thread that
checks large payloads, so a big file does not stall chargers. Nothing of it is kept: the
page that shows it is all there is. A file that is not a recording is refused with the
number of the line that is wrong.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from markupsafe import Markup
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from ocpplab.core.comparison import describe, diff_recordings
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
# Uploads read and parsed at once per process: each may hold four times the recording
# limit in memory (eight to compare), so a stranger's uploads cannot add up unbounded.
MAX_UPLOADS = 2
UPLOAD_SLACK = 64 * 1024  # multipart framing around the file


def upload_limit(services: Services) -> int:
    """The largest upload taken: a recording's limit in characters, up to 4 bytes each."""
    return 4 * services.settings.recording_limit + UPLOAD_SLACK


class InMemoryParser(MultiPartParser):
    """Starlette's parser, keeping uploaded files in memory instead of a temporary file
    (its default spills a file of over 1 MiB to disk). The request guard bounds the body."""

    spool_max_size = 2**62


async def index(request: Request) -> Response:
    return page(request, "recordings_index", status=200)


class Refused(Exception):
    """An upload that cannot be shown: its status and the sentence that says why."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status


@contextlib.contextmanager
def upload_slot(services: Services) -> Iterator[None]:
    """One of the `MAX_UPLOADS` places for an upload being read; refused (503) when full,
    before its body is read."""
    if services.uploads >= MAX_UPLOADS:
        raise Refused(503, "The server is reading other uploads; try again in a moment.")
    services.uploads += 1
    try:
        yield
    finally:
        services.uploads -= 1


async def uploads(
    request: Request, names: tuple[str, ...], values: dict[str, str] | None = None
) -> list[tuple[str, bytes]]:
    """The uploaded files of those form fields, read in memory: (file name, bytes); the
    text fields named in `values` are filled in."""
    try:
        parser = InMemoryParser(
            request.headers, request.stream(), max_files=len(names), max_fields=len(names) + 2
        )
        form = await parser.parse()
    except MultiPartException as exc:
        raise Refused(400, str(exc)) from None
    for key in values or {}:
        value = form.get(key)
        if isinstance(value, str) and values is not None:
            values[key] = value[:200]
    files = []
    for name in names:
        upload = form.get(name)
        if upload is None or isinstance(upload, str) or not upload.filename:
            raise Refused(
                422, "Choose a recording file." if len(names) == 1 else "Choose two files."
            )
        files.append((upload.filename, await upload.read()))
        await upload.close()
    return files


async def read_upload(services: Services, name: str, data: bytes) -> Recording:
    """A recording read on the worker thread (a big file must not stall the chargers)."""
    limit = upload_limit(services)
    max_frame = services.settings.max_frame_size

    def read() -> Recording | RecordingError:
        try:
            return read_recording(data, max_bytes=limit, max_frame_size=max_frame)
        except RecordingError as exc:
            return exc

    result = await services.gateway.checks.run(read)
    if result is None:
        raise Refused(503, "The server is busy reading other large files; try again in a moment.")
    if isinstance(result, RecordingError):
        raise Refused(422, f"{name} is not a recording ocpplab can open: {result}")
    return result


async def open_recording(request: Request) -> Response:
    services = services_of(request)
    try:
        with upload_slot(services):
            [(filename, data)] = await uploads(request, ("recording",))
            result = await read_upload(services, filename, data)
    except Refused as refused:
        return page(request, "recordings_index", status=refused.status, error=str(refused))
    upload_name = filename
    events = list(recording_events(result))
    shown = events[:MAX_SHOWN]
    entries = Markup("").join(
        Markup(render_block(services.templates, "_log.html", "log_entry", event=event))
        for event in shown
    )
    return page(
        request,
        "recording_view",
        recording=result,
        filename=upload_name,
        entries=entries,
        shown=len(shown),
        total=len(events),
    )


async def compare_recordings(request: Request) -> Response:
    """Two recordings side by side: what one did that the other did not, or differently."""
    services = services_of(request)
    try:
        with upload_slot(services):
            (name_a, data_a), (name_b, data_b) = await uploads(request, ("a", "b"))
            first = await read_upload(services, name_a, data_a)
            second = await read_upload(services, name_b, data_b)
    except Refused as refused:
        return page(request, "recordings_index", status=refused.status, compare_error=str(refused))
    differences = diff_recordings(first, second)
    return page(
        request,
        "comparison",
        names=(name_a, name_b),
        recordings=(first, second),
        differences=[(item, describe(item)) for item in differences[:MAX_SHOWN]],
        total=len(differences),
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


def page(request: Request, block: str, *, status: int = 200, **context: Any) -> HTMLResponse:
    services = services_of(request)
    return services.templates.TemplateResponse(
        request,
        "recordings.html",
        {
            "view": block,
            "error": context.pop("error", ""),
            "compare_error": context.pop("compare_error", ""),
            "replay_error": context.pop("replay_error", ""),
            **context,
        },
        status_code=status,
    )


routes: list[BaseRoute] = [
    Route("/recordings", index, name="recordings"),
    Route("/recordings/open", open_recording, methods=["POST"], name="open_recording"),
    Route("/recordings/compare", compare_recordings, methods=["POST"], name="compare_recordings"),
]
