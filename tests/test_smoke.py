from __future__ import annotations

from ocpp.v16 import call

from tests.support import RunningServer, ocpp_charger, page_socket


async def test_boot_reaches_a_page(server: RunningServer) -> None:
    async with (
        page_socket(server, "CP-1") as page,
        ocpp_charger(server.charger_url("CP-1"), "CP-1") as charger,
    ):
        result = await charger.call(
            call.BootNotification(charge_point_model="M", charge_point_vendor="V")
        )
        assert result.status == "Accepted"
        await page.wait_for("BootNotification")
