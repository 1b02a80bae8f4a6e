"""In a real Chromium: record a charger, download the file, open it, see the same frames."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from ocpp.v16 import call

from tests.support import CHROMIUM_ARGS, RunningServer, chromium_path, ocpp_charger

pytestmark = pytest.mark.browser


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    executable = chromium_path()
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


async def test_record_download_open_shows_the_same_frames(
    browser: Any, server: RunningServer, tmp_path: Path
) -> None:
    identity = "CP-rec"
    context = await browser.new_context(accept_downloads=True)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    await page.goto(f"{server.http}/chargers/{identity}")
    await page.get_by_text("Live updates: on").wait_for()

    await page.get_by_role("button", name="Record").click()
    await page.locator("#recording", has_text="Recording").wait_for()
    async with ocpp_charger(server.charger_url(identity), identity) as charger:
        await charger.call(
            call.BootNotification(charge_point_model="Rec Model", charge_point_vendor="Rec Co")
        )
        await charger.call(call.Heartbeat())
        await page.locator("#log li.in", has_text="Heartbeat").first.wait_for()
    await page.locator("#status", has_text="Offline").wait_for()
    await page.get_by_role("button", name="Stop recording").click()
    await page.get_by_role("button", name="Record").wait_for()

    async with page.expect_download() as waiting:
        await page.get_by_role("link", name="Download (NDJSON)").click()
    download = await waiting.value
    saved = tmp_path / "recording.ndjson"
    await download.save_as(saved)
    lines = saved.read_text("utf-8").splitlines()
    assert '"type":"recording"' in lines[0]

    await page.goto(f"{server.http}/recordings")
    await page.get_by_label("Recording file (.ndjson)").set_input_files(str(saved))
    await page.get_by_role("button", name="Open").click()
    await page.get_by_role("heading", name=f"Recording of {identity}").wait_for()
    log = page.locator("#log")
    assert await log.locator(".frame.dir-in", has_text="BootNotification").count() == 1
    assert await log.locator(".frame.dir-in", has_text="Heartbeat").count() == 1
    assert await log.locator(".frame.dir-out").count() == 2
    assert "Rec Co" in await log.inner_text()
    await page.screenshot(path=str(tmp_path / "recording.png"), full_page=True)
    await context.close()
    assert errors == [], errors
