"""Reading the charger page's log as a page socket carries it (ocpplab/web/log.py).

The page socket sends one compact line per exchange (`<li id="l{n}" class="x {dir} {type}"
data-unique-id="…">`), its outcome swapped in later (`<span id="o{n}" …>`), and a line's
frames only when the page asks: `{"log": "expand", "n": n}` answered by a `log_detail`
block (`<div id="b{n}" class="b">`). These helpers do what the page does, over a real
socket, so tests can assert on what a person sees when they expand a line.
"""

from __future__ import annotations

import asyncio
import html
import json
import re
from typing import Any

from tests.support import PageClient

LINE = re.compile(r'<li id="l(\d+)" class="x (in|out) (\w+)[^"]*" data-unique-id="([^"]*)"')
EVENT_LINE = re.compile(r'<li id="l(\d+)" class="ev ev-([\w-]+)')
DETAIL = re.compile(r'<div id="b(\d+)" class="b">')


def lines(text: str) -> list[tuple[int, str, str, str]]:
    """Every exchange line in `text`: (number, direction, message type, unique id), in order."""
    return [(int(n), d, t, uid) for n, d, t, uid in LINE.findall(text)]


def line_numbers(
    text: str, unique_id: str | None = None, *, dir: str | None = None, type: str | None = None
) -> list[int]:
    """The numbers of the exchange lines in `text` that match, oldest first."""
    return [
        n
        for n, d, t, uid in lines(text)
        if (unique_id is None or uid == unique_id)
        and (dir is None or d == dir)
        and (type is None or t == type)
    ]


async def wait_line(
    page: PageClient,
    unique_id: str,
    *,
    dir: str | None = None,
    type: str | None = None,
    timeout: float = 5.0,
) -> int:
    """Wait for the (first) line of `unique_id` (of that direction and type); its number."""
    async with asyncio.timeout(timeout):
        while True:
            found = line_numbers("".join(page.received), unique_id, dir=dir, type=type)
            if found:
                return found[0]
            await _receive(page)


def action_lines(text: str, action: str, *, dir: str | None = None) -> list[int]:
    """The numbers of the exchange lines in `text` whose call is `action`, oldest first."""
    pattern = re.compile(
        r'<li id="l(\d+)" class="x (in|out) CALL[^"]*" data-unique-id="[^"]*">'
        rf"<details><summary><time>[^<]*</time> <i>\w+</i> <b>{re.escape(action)}</b>"
    )
    return [int(n) for n, d in pattern.findall(text) if dir is None or d == dir]


async def wait_action(
    page: PageClient,
    action: str,
    *,
    dir: str | None = None,
    count: int = 1,
    timeout: float = 5.0,
) -> int:
    """Wait for the `count`th line of a call of `action`; its number."""
    async with asyncio.timeout(timeout):
        while True:
            found = action_lines("".join(page.received), action, dir=dir)
            if len(found) >= count:
                return found[count - 1]
            await _receive(page)


async def wait_lines(
    page: PageClient,
    unique_id: str,
    count: int,
    *,
    dir: str | None = None,
    type: str | None = None,
    timeout: float = 5.0,
) -> list[int]:
    """Wait for `count` lines of `unique_id` (a charger may reuse one); their numbers."""
    async with asyncio.timeout(timeout):
        while True:
            found = line_numbers("".join(page.received), unique_id, dir=dir, type=type)
            if len(found) >= count:
                return found
            await _receive(page)


def outcome_of(page: PageClient, number: int) -> str:
    """Line `number`'s outcome as the page shows it now: the last one received."""
    pattern = re.compile(rf'<span id="o{number}" [^>]*>.*?</span>', re.DOTALL)
    found = pattern.findall("".join(page.received))
    assert found, f"no outcome of line {number} was received"
    return str(found[-1])


async def wait_outcome(page: PageClient, number: int, needle: str, timeout: float = 5.0) -> str:
    """Wait until line `number`'s outcome (in the line or swapped in) contains `needle`."""
    pattern = re.compile(rf'<span id="o{number}" [^>]*>.*?</span>', re.DOTALL)
    async with asyncio.timeout(timeout):
        while True:
            for fragment in page.received:
                for match in pattern.finditer(fragment):
                    if needle in match.group(0):
                        return match.group(0)
            await _receive(page)


async def expand(page: PageClient, number: int, timeout: float = 5.0) -> str:
    """Ask for line `number`'s frames as the page does when it is expanded; the detail."""
    start = len(page.received)
    await page.connection.send(json.dumps({"log": "expand", "n": number}))
    needle = f'<div id="b{number}" class="b">'
    async with asyncio.timeout(timeout):
        while True:
            for fragment in page.received[start:]:
                if needle in fragment:
                    return str(fragment)
            await _receive(page)


async def expand_until(page: PageClient, number: int, needle: str, timeout: float = 5.0) -> str:
    """Expand line `number` until its detail contains `needle` (its answer may come later)."""
    async with asyncio.timeout(timeout):
        while True:
            detail = await expand(page, number, timeout=timeout)
            if needle in detail:
                return detail
            await asyncio.sleep(0.05)


async def expand_all(page: PageClient, timeout: float = 10.0) -> str:
    """Every detail of every line the page has (exchanges and events), concatenated."""
    text = "".join(page.received)
    numbers = sorted({n for n, *_ in lines(text)} | {int(n) for n, _ in EVENT_LINE.findall(text)})
    return "".join([await expand(page, number, timeout=timeout) for number in numbers])


async def search(page: PageClient, query: str, timeout: float = 5.0) -> list[int]:
    """Ask the page socket which lines' frames contain `query`, as the search box does."""
    start = len(page.received)
    await page.connection.send(json.dumps({"log": "search", "q": query}))
    pattern = re.compile(r'<div id="log-found" hidden data-q="([^"]*)" data-n="([\d ]*)">')
    async with asyncio.timeout(timeout):
        while True:
            for fragment in page.received[start:]:
                for q, numbers in pattern.findall(fragment):
                    if html.unescape(q) == query:
                        return [int(n) for n in numbers.split()]
            await _receive(page)


def exact_frames(detail: str) -> list[str]:
    """The exact frames an expanded line shows (unescaped), in order: call, then answer."""
    return [
        html.unescape(text)
        for text in re.findall(r'<pre class="json raw">(.*?)</pre>', detail, re.DOTALL)
    ]


def pretty_frames(detail: str) -> list[str]:
    """The pretty-printed bodies an expanded line shows (unescaped), in order."""
    return [
        html.unescape(text)
        for text in re.findall(r'<pre class="json">(.*?)</pre>', detail, re.DOTALL)
    ]


def frames(detail: str) -> list[Any]:
    """The exact frames an expanded line shows, decoded."""
    return [json.loads(text) for text in exact_frames(detail)]


async def _receive(page: PageClient) -> None:
    page.received.append(await page.connection.recv())
