"""Meter samples for a chart: the reducer keeps them (pure), `meter_chart.svg` draws them.

The reducer is fed literal frames, as in tests/test_state.py; the SVG is read back with
xml.etree, as a browser's parser would.
"""

from __future__ import annotations

import datetime
import time
import xml.etree.ElementTree as ET
from typing import Any

import orjson
import pytest
from markupsafe import Markup

from ocpplab.dialects.ocpp16.state import MAX_CHARTED_CONNECTORS, MAX_METER_POINTS, ChargerState
from ocpplab.web import meter_chart
from ocpplab.web.templating import make_templates, render_block

AT = "2026-11-26T14:00:00.000Z"  # the server's clock
START = "2026-11-26T13:00:00Z"  # the charger's
ACCEPTED = {"idTagInfo": {"status": "Accepted"}}
SVG = "{http://www.w3.org/2000/svg}"


def started(connector: int = 1, transaction: int = 5, meter_start: Any = 1000) -> ChargerState:
    state = ChargerState()
    start(state, connector, transaction, meter_start)
    return state


def start(state: ChargerState, connector: int, transaction: int, meter_start: Any = 1000) -> None:
    state.apply(
        "StartTransaction",
        {"connectorId": connector, "idTag": "TAG", "meterStart": meter_start, "timestamp": START},
        {**ACCEPTED, "transactionId": transaction},
        AT,
    )


def at_second(second: int) -> str:
    moment = datetime.datetime(2026, 11, 26, 13, tzinfo=datetime.UTC)
    return (moment + datetime.timedelta(seconds=second)).isoformat().replace("+00:00", "Z")


def meter_values(
    state: ChargerState, second: int, *samples: dict[str, Any], connector: int = 1, **extra: Any
) -> None:
    request = {
        "connectorId": connector,
        "meterValue": [{"timestamp": at_second(second), "sampledValue": list(samples)}],
        **extra,
    }
    state.apply("MeterValues", request, {}, AT)


def series(state: ChargerState, connector: int = 1) -> dict[str, Any]:
    charted: dict[str, Any] = state.to_json()["samples"][str(connector)]
    return charted


POWER = "Power.Active.Import"
ENERGY = "Energy.Active.Import.Register"


# The reducer


def test_units_are_normalised_to_w_wh_and_percent() -> None:
    state = started(meter_start=1000)
    meter_values(
        state,
        60,
        {"value": "7.4", "measurand": POWER, "unit": "kW"},
        {"value": "1.5", "measurand": ENERGY, "unit": "kWh"},
        {"value": "54", "measurand": "SoC", "unit": "Percent", "location": "EV"},
        {"value": "230", "measurand": "Voltage", "unit": "V"},  # not charted
    )
    meter_values(state, 120, {"value": "1600"}, {"value": 3700, "measurand": POWER, "unit": "W"})

    charted = series(state)
    assert charted["power"] == [[60.0, 7400.0], [120.0, 3700.0]]
    # meterStart at t = 0; a sample without measurand nor unit is the register, in Wh.
    assert charted["energy"] == [[0.0, 1000.0], [60.0, 1500.0], [120.0, 1600.0]]
    assert charted["soc"] == [[60.0, 54.0]]
    assert charted["energy_start"] == 1000.0
    assert (charted["transaction_id"], charted["stopped"], charted["started"]) == (5, False, START)
    assert all(isinstance(value, float) for _, value in charted["power"] + charted["energy"])


def test_per_phase_power_is_summed_unless_a_total_is_sent() -> None:
    state = started()
    phases = [
        {"value": "2300", "measurand": POWER, "phase": "L1"},
        {"value": "2.3", "measurand": POWER, "phase": "L2-N", "unit": "kW"},
        {"value": "2300", "measurand": POWER, "phase": "L3"},
        {"value": "99", "measurand": POWER, "phase": "N"},  # neutral: not a line to add
        {"value": "400", "measurand": POWER, "phase": "L1-L2"},  # between lines: neither
    ]
    meter_values(state, 10, *phases)
    meter_values(state, 20, *phases, {"value": "7000", "measurand": POWER})
    meter_values(
        state,
        30,
        {"value": "1", "measurand": POWER, "location": "Inlet"},  # the grid side loses
        {"value": "3000", "measurand": POWER, "phase": "L1", "location": "Outlet"},
    )

    assert series(state)["power"] == [[10.0, 6900.0], [20.0, 7000.0], [30.0, 3000.0]]


@pytest.mark.parametrize(
    "sample",
    [
        {"value": "abc", "measurand": POWER},
        {"value": "NaN", "measurand": POWER},
        {"value": "inf", "measurand": POWER},
        {"value": "1e400", "measurand": POWER},
        {"value": "1_000", "measurand": POWER},
        {"value": "9" * 40, "measurand": POWER},
        {"value": "5e12", "measurand": POWER},
        [  # each beyond any meter, though their sum is not
            {"value": "5e12", "measurand": POWER, "phase": "L1"},
            {"value": "-5e12", "measurand": POWER, "phase": "L2"},
        ],
        {"value": True, "measurand": POWER},
        {"value": ["1"], "measurand": POWER},
        {"value": None, "measurand": POWER},
        {"measurand": POWER},
        {"value": "7", "measurand": POWER, "unit": "MW"},
        {"value": "7", "measurand": POWER, "unit": ["kW"]},
        {"value": "7", "measurand": ["Power"]},
        {"value": "7", "measurand": POWER, "phase": {"L": 1}},
        {"value": "7", "measurand": POWER, "format": "SignedData"},
        "not a sample",
    ],
)
def test_values_that_are_not_readings_are_ignored_without_raising(sample: Any) -> None:
    state = started()
    meter_values(state, 10, *(sample if isinstance(sample, list) else [sample]))

    assert series(state)["power"] == []
    assert orjson.dumps(state.to_json())  # still JSON


def test_odd_frames_never_raise_nor_chart() -> None:
    state = started()
    for request in (
        {"connectorId": 1, "meterValue": [{"timestamp": None, "sampledValue": "x"}, 3]},
        {"connectorId": "1", "meterValue": [{"sampledValue": [{"value": "1"}]}]},
        {"connectorId": True, "meterValue": []},
        {"connectorId": 1, "transactionId": "5", "meterValue": [[]]},
    ):
        state.apply("MeterValues", request, {}, AT)
    state.apply("StopTransaction", {"transactionId": 5, "transactionData": "x"}, ACCEPTED, AT)

    assert series(state)["power"] == []
    assert series(state)["stopped"] is True


def test_a_timestamp_it_cannot_read_is_taken_as_the_server_s_time() -> None:
    state = started()
    state.apply(
        "MeterValues",
        {
            "connectorId": 1,
            "meterValue": [{"timestamp": "later", "sampledValue": [{"value": "2"}]}],
        },
        {},
        AT,
    )

    assert series(state)["energy"][-1] == [3600.0, 2.0]  # AT is an hour after START


def test_points_are_bounded_per_series_oldest_dropped() -> None:
    state = started()
    for second in range(0, 3 * MAX_METER_POINTS * 10, 10):
        meter_values(state, second, {"value": str(second), "measurand": POWER})

    power = series(state)["power"]
    assert len(power) == MAX_METER_POINTS
    assert power[0] == [float(3 * MAX_METER_POINTS * 10 - MAX_METER_POINTS * 10)] * 2
    assert power[-1][0] == float(3 * MAX_METER_POINTS * 10 - 10)


def test_a_sample_sent_again_replaces_the_first_and_late_ones_are_put_in_order() -> None:
    state = started()
    meter_values(state, 20, {"value": "2", "measurand": POWER})
    meter_values(state, 10, {"value": "1", "measurand": POWER})
    meter_values(state, 20, {"value": "3", "measurand": POWER})

    assert series(state)["power"] == [[10.0, 1.0], [20.0, 3.0]]


def test_the_stop_closes_the_chart_which_stays_until_the_next_start() -> None:
    state = started(transaction=5, meter_start=1000)
    meter_values(state, 60, {"value": "1200"}, transactionId=5)
    state.apply(
        "StopTransaction",
        {
            "transactionId": 5,
            "meterStop": 1500,
            "timestamp": at_second(180),
            "transactionData": [
                {"timestamp": at_second(120), "sampledValue": [{"value": "1400"}]},
            ],
        },
        ACCEPTED,
        AT,
    )
    meter_values(state, 240, {"value": "1500"}, {"value": "9", "measurand": POWER})  # idle

    charted = series(state)
    assert charted["stopped"] is True
    assert charted["energy"] == [[0.0, 1000.0], [60.0, 1200.0], [120.0, 1400.0], [180.0, 1500.0]]
    assert charted["power"] == []

    start(state, 1, 6, meter_start=1500)
    assert series(state)["energy"] == [[0.0, 1500.0]]
    assert (series(state)["transaction_id"], series(state)["stopped"]) == (6, False)


def test_samples_of_a_transaction_not_seen_starting_start_its_chart() -> None:
    # After a reconnect the state is rebuilt from frames: the StartTransaction was before.
    state = ChargerState()
    meter_values(state, 0, {"value": "5"}, connector=2)  # outside any transaction: not charted
    assert "samples" not in state.to_json()

    meter_values(state, 30, {"value": "500", "measurand": POWER}, connector=2, transactionId=9)
    meter_values(state, 60, {"value": "600", "measurand": POWER}, connector=2)
    meter_values(state, 90, {"value": "700", "measurand": POWER}, connector=2, transactionId=10)

    charted = series(state, 2)
    assert charted["transaction_id"] == 10
    assert charted["power"] == [[0.0, 700.0]]
    assert charted["started"] == at_second(90)

    state.apply("StopTransaction", {"transactionId": 10, "meterStop": 5}, ACCEPTED, AT)
    assert series(state, 2)["stopped"] is True  # though the transaction list never saw it


def test_charted_connectors_are_bounded_stopped_ones_dropped_first() -> None:
    state = ChargerState()
    for connector in range(1, MAX_CHARTED_CONNECTORS + 1):
        start(state, connector, 100 + connector)
    state.apply("StopTransaction", {"transactionId": 103, "meterStop": 1}, ACCEPTED, AT)
    start(state, 50, 150)
    start(state, 51, 151)

    kept = state.to_json()["samples"]
    assert len(kept) == MAX_CHARTED_CONNECTORS
    assert sorted(kept) == ["2", "4", "50", "51"]  # 3 (stopped) went first, then 1 (oldest)


def test_a_connector_starting_again_is_the_newest_chart() -> None:
    state = ChargerState()
    for connector in range(1, MAX_CHARTED_CONNECTORS + 1):
        start(state, connector, 100 + connector)
    start(state, 2, 200)
    assert sorted(state.to_json()["samples"]) == ["1", "2", "3", "4"]  # none dropped for it

    start(state, 50, 150)
    start(state, 51, 151)
    kept = state.to_json()["samples"]
    assert sorted(kept) == ["2", "4", "50", "51"]  # 1, then 3: 2 was newer than both
    assert kept["2"]["transaction_id"] == 200


def test_a_state_full_of_samples_stays_small() -> None:
    state = ChargerState()
    assert "samples" not in state.to_json()  # absent until something is charted
    for connector in range(1, MAX_CHARTED_CONNECTORS + 1):
        start(state, connector, connector)
        for second in range(MAX_METER_POINTS):
            meter_values(
                state,
                second,
                {"value": "12345.678", "measurand": POWER},
                {"value": "123456.789"},
                {"value": "99.5", "measurand": "SoC"},
                connector=connector,
            )

    size = len(orjson.dumps(state.to_json()))
    assert size < 100 * 1024, size


# The chart


def charted_samples(points: int = 3) -> dict[str, Any]:
    return {
        "transaction_id": 5,
        "started": START,
        "stopped": False,
        "energy_start": 10_000.0,
        "power": [[60.0 * i, 7000.0 + 200 * i] for i in range(points)],
        "energy": [[60.0 * i, 10_000.0 + 1605 * i] for i in range(points)],
        "soc": [[60.0 * i, 50.0 + 2 * i] for i in range(points)],
    }


def parse(markup: Markup) -> ET.Element:
    return ET.fromstring(str(markup))


def texts(root: ET.Element) -> list[str]:
    return [element.text or "" for element in root.iter(f"{SVG}text")]


def test_the_chart_is_svg_named_by_its_current_values() -> None:
    markup = meter_chart.svg(charted_samples(), label="Connector 1")

    assert isinstance(markup, Markup)
    root = parse(markup)
    summary = "Connector 1: 7.4 kW, 3.21 kWh, SoC 54 %"
    assert root.tag == f"{SVG}svg"
    assert (root.get("role"), root.get("aria-label")) == ("img", summary)
    assert root.find(f"{SVG}title") is not None
    assert root.findtext(f"{SVG}title") == summary
    shown = texts(root)
    assert {"Power", "Energy delivered", "State of charge"} <= set(shown)
    assert {"7.4 kW", "3.21 kWh", "54 %"} <= set(shown)  # current values, printed
    assert {"10 kW", "0 kW", "5 kWh", "0 kWh", "100 %", "0 %"} <= set(shown)  # axes
    assert "2 min since start" in shown
    assert len(root.findall(f".//{SVG}polyline")) == 3


def test_units_follow_the_magnitude() -> None:
    small = {"power": [[0, 450.0], [30, 800.0]], "energy": [[0, 50.0], [30, 57.5]]}
    root = parse(meter_chart.svg(small, label="C"))

    assert root.get("aria-label") == "C: 800 W, 7.5 Wh"  # energy since the first register
    assert {"1000 W", "0 W", "10 Wh", "0 Wh", "30 s since start"} <= set(texts(root))

    long = {"power": [[0, 11_000.0], [3 * 3600, 22_000.0]]}
    root = parse(meter_chart.svg(long, label="C"))
    assert {"22 kW", "25 kW", "3 h since start"} <= set(texts(root))


def test_a_stopped_transaction_says_so() -> None:
    samples = {**charted_samples(), "stopped": True}

    assert meter_chart.svg(samples, label="C").count("(transaction stopped)") == 2


def test_text_is_escaped_and_nothing_inline_runs_or_styles() -> None:
    label = '<script>alert(1)</script> & "quoted" \u2028'
    markup = meter_chart.svg(charted_samples(), label=label)

    root = parse(markup)
    assert root.get("aria-label", "").startswith(label + ": ")
    assert (root.findtext(f"{SVG}title") or "").startswith(label)
    assert "<script" not in markup
    assert "style" not in markup  # the CSP has style-src 'self': presentation attributes only
    assert " on" not in markup.replace(" one", "")  # no event handler attributes


@pytest.mark.parametrize(
    "samples",
    [
        None,
        "power",
        {},
        {"power": "x", "energy": {"a": 1}, "soc": None},
        {"power": [[0, "7"], ["0", 1], [1], [0, 1, 2], "xy", [True, 1], [0, float("nan")]]},
        {"power": [[0, 1e300]], "energy_start": "x", "energy": [[0, float("inf")]]},
    ],
)
def test_anything_else_draws_an_empty_chart(samples: Any) -> None:
    root = parse(meter_chart.svg(samples, label="C"))

    assert root.get("aria-label") == "C: no meter values yet"
    assert "No meter values yet" in texts(root)


def test_energy_is_counted_from_the_first_register_without_a_readable_start() -> None:
    for start_value in (None, "1000", float("nan"), True):
        samples = {"energy_start": start_value, "energy": [[0, 1000.0], [60, 1500.0]]}

        assert parse(meter_chart.svg(samples, label="C")).get("aria-label") == "C: 500 Wh"


def test_one_point_and_flat_series_draw() -> None:
    root = parse(meter_chart.svg({"power": [[0, 0.0]], "soc": [[5, 40.0], [9, 40.0]]}, label="C"))

    assert root.get("aria-label") == "C: 0 W, SoC 40 %"
    assert len(root.findall(f".//{SVG}circle")) == 2


def test_drawing_is_bounded() -> None:
    samples = charted_samples(MAX_METER_POINTS)
    flood = {"power": [[i, i] for i in range(100_000)]}

    best = min(_timed(meter_chart.svg, samples) for _ in range(5))
    root = parse(meter_chart.svg(flood))
    (polyline,) = root.iter(f"{SVG}polyline")
    assert len(polyline.get("points", "").split()) == meter_chart.MAX_POINTS
    assert best < 0.05  # ~1 ms here; generous for a loaded machine


def _timed(function: Any, *args: Any) -> float:
    begun = time.perf_counter()
    function(*args)
    return time.perf_counter() - begun


# The state panel


def state_panel(state: dict[str, Any], *, with_chart: bool = True) -> str:
    templates = make_templates()
    assert templates.env.globals["meter_chart"] is meter_chart.svg  # every page has it
    if not with_chart:
        del templates.env.globals["meter_chart"]  # a template set without it still renders
    return render_block(
        templates,
        "charger.html",
        "state_panel",
        state=state,
        state_template="dialects/ocpp16_state.html",
    )


def test_the_state_panel_charts_each_connector_with_a_transaction() -> None:
    state = started(connector=2, transaction=77)
    meter_values(state, 60, {"value": "3.5", "measurand": POWER, "unit": "kW"}, connector=2)

    html = state_panel(state.to_json(), with_chart=True)

    assert 'id="meter-2"' in html
    assert "Connector 2 · transaction 77 · running" in html
    assert 'aria-label="Connector 2: 3.5 kW, 0 Wh"' in html


def test_the_state_panel_renders_without_the_chart_function() -> None:
    state = started()

    html = state_panel(state.to_json(), with_chart=False)

    assert "Connector 1 · transaction 5 · running" in html
    assert "<svg" not in html
