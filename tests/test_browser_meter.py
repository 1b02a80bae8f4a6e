"""A person in a real Chromium watches a real charger's transaction as a meter chart."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from ocpp.v16 import call

from ocpplab.web import meter_chart
from tests.support import CHROMIUM_ARGS, RunningServer, chromium_path, ocpp_charger

pytestmark = pytest.mark.browser

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
SVG_CHART = "#state svg.meter-chart"


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


@pytest.fixture
def charting(server: RunningServer) -> RunningServer:
    assert server.app.state.services.templates.env.globals["meter_chart"] is meter_chart.svg
    return server


def sampled(power_kw: str, energy_kwh: str, soc: str) -> list[dict[str, Any]]:
    return [
        {"value": power_kw, "measurand": "Power.Active.Import", "unit": "kW"},
        {"value": energy_kwh, "measurand": "Energy.Active.Import.Register", "unit": "kWh"},
        {"value": soc, "measurand": "SoC", "unit": "Percent", "location": "EV"},
        {"value": "abc", "measurand": "Power.Active.Import", "phase": "L1"},  # ignored
    ]


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
async def test_a_transaction_s_meter_values_show_as_a_live_chart(
    browser: Any, charting: RunningServer, viewport: dict[str, int], tmp_path: Path
) -> None:
    page = await browser.new_page(viewport=viewport)
    errors: list[str] = []  # a CSP violation (an inline style, say) is a console error
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    page.on("pageerror", lambda error: errors.append(str(error)))
    await page.goto(charting.http + "/chargers/CP-M")
    await page.get_by_text("Live updates: on").wait_for()
    state_tab = page.get_by_role("tab", name="State", exact=True)
    if await state_tab.is_visible():  # the page with tabs (issue 11, point 1)
        await state_tab.click()

    async with ocpp_charger(charting.charger_url("CP-M"), "CP-M") as charger:
        await charger.call(call.BootNotification(charge_point_model="M", charge_point_vendor="V"))
        started = await charger.call(
            call.StartTransaction(
                connector_id=1, id_tag="TAG", meter_start=1000, timestamp="2026-11-26T13:00:00Z"
            )
        )
        await charger.call(
            call.MeterValues(
                connector_id=1,
                transaction_id=started.transaction_id,
                meter_value=[
                    {
                        "timestamp": "2026-11-26T13:20:00Z",
                        "sampledValue": sampled("7.4", "4.21", "54"),
                    }
                ],
            )
        )
        chart = page.locator(SVG_CHART)
        await page.locator(
            f'{SVG_CHART}[aria-label="Connector 1: 7.4 kW, 3.21 kWh, SoC 54 %"]'
        ).wait_for()
        caption = f"Connector 1 · transaction {started.transaction_id} · running"
        await page.locator("#meter-1", has_text=caption).wait_for()
        for shown in ("7.4 kW", "3.21 kWh", "54 %", "20 min since start"):
            await chart.get_by_text(shown, exact=True).wait_for()

        await chart.scroll_into_view_if_needed()
        box = await chart.bounding_box()
        assert box is not None
        assert box["width"] >= 240
        assert box["x"] >= 0
        assert box["x"] + box["width"] <= viewport["width"]
        state = page.locator("#state")
        assert await state.evaluate("panel => panel.scrollWidth <= panel.clientWidth")
        name = f"meter-{viewport['width']}x{viewport['height']}"
        await page.screenshot(path=str(tmp_path / f"{name}.png"))

        await charger.call(
            call.MeterValues(
                connector_id=1,
                transaction_id=started.transaction_id,
                meter_value=[
                    {"timestamp": "2026-11-26T15:00:00Z", "sampledValue": sampled("11", "9", "80")}
                ],
            )
        )
        await page.locator(
            f'{SVG_CHART}[aria-label="Connector 1: 11 kW, 8 kWh, SoC 80 %"]'
        ).wait_for()
        await chart.get_by_text("2 h since start", exact=True).wait_for()
        await charger.call(
            call.StopTransaction(
                transaction_id=started.transaction_id,
                meter_stop=9500,
                timestamp="2026-11-26T15:05:00Z",
            )
        )
        await page.locator("#meter-1", has_text="· stopped").wait_for()
        await chart.scroll_into_view_if_needed()
        await page.screenshot(path=str(tmp_path / f"{name}-stopped.png"))

    assert await page.locator(SVG_CHART).count() == 1
    assert errors == [], errors
