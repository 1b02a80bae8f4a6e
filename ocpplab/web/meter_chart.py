"""A connector's meter samples as an inline SVG line chart: power, energy and SoC. Pure.

The state reducer (`dialects/ocpp16/state.py`, `MeterSamples`) keeps the points; this draws
them, on the server, for the state panel. No script, and no `style` (the page's CSP has
`style-src 'self'`): colours and sizes are SVG presentation attributes, text and axes take
the page's text colour (`currentColor`), so the chart follows the light and dark themes.

One small chart per series sent, stacked over one time axis: power (W or kW), energy
delivered since the transaction started (Wh or kWh: the register minus meterStart, or
minus the first register read), SoC (%). Each chart prints its current value; the
`<svg>`'s accessible name sums them up ("Connector 1: 7.4 kW, 3.21 kWh, SoC 54 %").
The cost is bounded: at most MAX_POINTS points per series are drawn (240 x 3: ~0.5 ms).

Templates call `svg` as the global `meter_chart` (templates/dialects/ocpp16_state.html),
registered with the other template helpers in web/templating.py; a template environment
without it shows the state panel without charts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from markupsafe import Markup, escape

MAX_POINTS = 1000  # per series: the reducer keeps 240; input that claims more is cut
LARGEST = 1e15  # a value or time beyond it is not drawn
WIDTH = 320
LEFT = 52  # room for the y labels
RIGHT = 6
HEADER = 26  # a chart's name and current value
PLOT = 48  # a chart's plotting height
GAP = 10
AXIS = 20  # the time labels under the last chart
PLOT_WIDTH = WIDTH - LEFT - RIGHT

# JSON key -> colour (readable on the light and the dark theme), name
_COLOURS = {"power": "#2f6fed", "energy": "#1a8f5f", "soc": "#b7791f"}
_NAMES = {"power": "Power", "energy": "Energy delivered", "soc": "State of charge"}
Point = tuple[float, float]


def svg(samples: Mapping[str, Any] | None, *, label: str = "Meter values") -> Markup:
    """The chart of one connector's samples (`MeterSamples.to_json()`), as SVG markup.

    `label` names the chart for people and screen readers (escaped, like all text here).
    """
    samples = samples if isinstance(samples, Mapping) else {}
    charts = [chart for chart in _charts(samples) if chart is not None]
    summary = _summary(label, charts, stopped=samples.get("stopped") is True)
    height = len(charts) * (HEADER + PLOT + GAP) + (AXIS if charts else 24)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="meter-chart" role="img" '
        f'viewBox="0 0 {WIDTH} {height}" width="100%" font-size="12" '
        f'aria-label="{escape(summary)}"><title>{escape(summary)}</title>'
    ]
    if not charts:
        parts.append('<text x="0" y="16" fill="currentColor">No meter values yet</text>')
    span = _span([point for chart in charts for point in chart.points])
    for index, chart in enumerate(charts):
        parts.append(chart.markup(index * (HEADER + PLOT + GAP), span))
    if charts:
        parts.append(_time_axis(span, height - AXIS))
    parts.append("</svg>")
    return Markup("".join(parts))


class _Chart:
    """One series ready to draw: points in display units, its range and current value."""

    def __init__(
        self, key: str, colour: str, unit: str, points: list[Point], low: float, high: float
    ) -> None:
        self.key, self.colour, self.unit, self.points = key, colour, unit, points
        self.low, self.high = low, high

    @property
    def current(self) -> str:
        return f"{_number(self.points[-1][1])} {self.unit}"

    def markup(self, top: int, span: tuple[float, float]) -> str:
        plot_top, bottom = top + HEADER, top + HEADER + PLOT
        start, end = span
        x_scale = PLOT_WIDTH / (end - start) if end > start else 0.0
        y_scale = PLOT / (self.high - self.low)

        # x = x0 + t * x_scale, y = y0 - value * y_scale: one multiplication each, inline.
        x0 = LEFT - start * x_scale if x_scale else LEFT + PLOT_WIDTH
        y0 = bottom + self.low * y_scale
        coordinates = [f"{x0 + t * x_scale:.1f},{y0 - v * y_scale:.1f}" for t, v in self.points]
        last_x, last_y = coordinates[-1].split(",")
        return "".join(
            (
                f'<g class="meter-{self.key}">',
                f'<text x="0" y="{top + 14}" fill="currentColor">{_NAMES[self.key]}</text>',
                f'<text x="{WIDTH - RIGHT}" y="{top + 14}" text-anchor="end" font-weight="bold"'
                f' fill="currentColor">{escape(self.current)}</text>',
                _gridline(plot_top, _number(self.high), self.unit),
                _gridline(bottom, _number(self.low), self.unit),
                f'<polyline points="{" ".join(coordinates)}" fill="none" '
                f'stroke="{self.colour}" stroke-width="2" stroke-linejoin="round"/>'
                if len(coordinates) > 1
                else "",
                f'<circle cx="{last_x}" cy="{last_y}" r="3" fill="{self.colour}"/>',
                "</g>",
            )
        )


def _gridline(y: int, value: str, unit: str) -> str:
    return (
        f'<line x1="{LEFT}" y1="{y}" x2="{WIDTH - RIGHT}" y2="{y}" stroke="currentColor" '
        f'stroke-opacity="0.25"/><text x="{LEFT - 4}" y="{y + 4}" text-anchor="end" '
        f'fill="currentColor" fill-opacity="0.8">{escape(value)} {escape(unit)}</text>'
    )


def _time_axis(span: tuple[float, float], top: int) -> str:
    start, end = span
    divisor, unit = (1, "s") if end < 120 else (60, "min") if end < 7200 else (3600, "h")
    return (
        f'<text x="{LEFT}" y="{top + 14}" fill="currentColor" fill-opacity="0.8">'
        f"{_number(start / divisor)} {unit}</text>"
        f'<text x="{WIDTH - RIGHT}" y="{top + 14}" text-anchor="end" fill="currentColor" '
        f'fill-opacity="0.8">{_number(end / divisor)} {unit} since start</text>'
    )


def _charts(samples: Mapping[str, Any]) -> list[_Chart | None]:
    energy_start = _finite(samples.get("energy_start"))
    charts: list[_Chart | None] = []
    for key, colour in _COLOURS.items():
        points = _points(samples.get(key))
        if not points:
            charts.append(None)
            continue
        if key == "energy":
            origin = energy_start if energy_start is not None else points[0][1]
            points = [(t, value - origin) for t, value in points]
        charts.append(_chart(key, colour, points))
    return charts


def _chart(key: str, colour: str, points: list[Point]) -> _Chart:
    if key == "soc":
        low = min(0.0, *(value for _, value in points))
        high = max(100.0, *(value for _, value in points))
        return _Chart(key, colour, "%", points, low, high)
    base, kilo = ("W", "kW") if key == "power" else ("Wh", "kWh")
    largest = max(abs(value) for _, value in points)
    unit, divisor = (kilo, 1000.0) if largest >= 1000 else (base, 1.0)
    shown = [(t, value / divisor) for t, value in points]
    low = _nice(min(0.0, *(value for _, value in shown)))
    high = _nice(max(0.0, *(value for _, value in shown)))
    return _Chart(key, colour, unit, shown, low, high if high > low else low + 1.0)


def _nice(value: float) -> float:
    """The round number (1, 2, 2.5 or 5 times a power of ten) next beyond `value`."""
    if value == 0:
        return 0.0
    magnitude = abs(value)
    power = 10.0 ** math.floor(math.log10(magnitude))
    step = next(s * power for s in (1, 2, 2.5, 5, 10) if s * power >= magnitude)
    return math.copysign(step, value)


def _points(raw: Any) -> list[Point]:
    """`[[t, value], …]` from the state (JSON: lists), with anything else left out."""
    if not isinstance(raw, list | tuple):
        return []
    points = [
        (float(item[0]), float(item[1]))
        for item in raw[-MAX_POINTS:]
        if type(item) in _PAIRS
        and len(item) == 2
        and type(item[0]) in _NUMBERS
        and type(item[1]) in _NUMBERS
        and -LARGEST <= item[0] <= LARGEST  # NaN is not
        and -LARGEST <= item[1] <= LARGEST
    ]
    points.sort(key=_time)
    return points


_PAIRS = (list, tuple)
_NUMBERS = (int, float)  # not bool, nor anything else a state could hold


def _time(point: Point) -> float:
    return point[0]


def _finite(value: Any) -> float | None:
    if type(value) in _NUMBERS and -LARGEST <= value <= LARGEST:
        return float(value)
    return None


def _span(points: list[Point]) -> tuple[float, float]:
    if not points:
        return (0.0, 0.0)
    return (min(t for t, _ in points), max(t for t, _ in points))


def _summary(label: str, charts: list[_Chart], *, stopped: bool) -> str:
    if not charts:
        return f"{label}: no meter values yet"
    spoken = (f"SoC {chart.current}" if chart.key == "soc" else chart.current for chart in charts)
    text = f"{label}: " + ", ".join(spoken)
    return text + " (transaction stopped)" if stopped else text


def _number(value: float) -> str:
    """7.4, 3.21, 54, 1234: about three significant digits, no trailing zeros."""
    size = abs(value)
    text = f"{value:.0f}" if size >= 100 else f"{value:.1f}" if size >= 10 else f"{value:.2f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in {"-0", ""} else text
