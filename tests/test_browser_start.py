"""A person in a real Chromium: open `/`, type an identity, Start, and watch a charger boot."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from ocpp.v16 import call

from tests.support import CHROMIUM_ARGS, RunningServer, chromium_path, ocpp_charger

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}


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


async def test_start_then_a_charger_boot_appears_live(browser: Any, server: RunningServer) -> None:
    page = await browser.new_page()
    errors: list[str] = []
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    page.on("pageerror", lambda error: errors.append(str(error)))

    await page.goto(server.http + "/")
    central_url = await page.locator("#central-url").text_content()
    assert central_url == f"ws://127.0.0.1:{server.port}/ocpp/"
    await page.get_by_label("Charger identity").fill("CP-1")
    await page.get_by_role("button", name="Start").click()
    await page.wait_for_url(f"{server.http}/chargers/CP-1")
    await page.get_by_text("Live updates: on").wait_for()
    await page.get_by_text("Waiting for the charger to connect").wait_for()
    await page.get_by_role("tab", name="State").click()

    async with ocpp_charger(server.charger_url("CP-1"), "CP-1") as charger:
        result = await charger.call(
            call.BootNotification(charge_point_model="Model X", charge_point_vendor="Vendor Y")
        )
        assert result.status == "Accepted"

        await page.locator("#log li.in", has_text="BootNotification").wait_for()
        await page.locator("#status", has_text="Connected").wait_for()
        await page.locator("#glance", has_text="Boot answered Accepted").wait_for()
        await page.locator("#state", has_text="Vendor Y").wait_for()
        await page.locator("#state", has_text="Model X").wait_for()

    await page.locator("#status", has_text="Offline since").wait_for()
    assert errors == [], errors


async def test_pages_fit_a_phone_screen(browser: Any, server: RunningServer) -> None:
    page = await browser.new_page(viewport=PHONE)
    await page.goto(server.http + "/")
    assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]

    await page.goto(server.http + "/chargers/a-rather-long-charger-identity-0123456789")
    await page.get_by_text("Live updates: on").wait_for()
    async with ocpp_charger(
        server.charger_url("a-rather-long-charger-identity-0123456789"), "x"
    ) as charger:
        await charger.call(
            call.BootNotification(
                charge_point_model="M" * 20,
                charge_point_vendor="V" * 20,
                firmware_version="f" * 50,
            )
        )
        await page.locator("#log li.in", has_text="BootNotification").wait_for()
        await page.get_by_role("tab", name="State").click()
        await page.locator("#state", has_text="MMMM").wait_for()
        assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
