"""A latency CDF plot (PNG) drawn with numpy + Pillow: the app ships no plotting library.

The curve is the empirical cumulative distribution of end-to-end latency, with the deadline as a
vertical line and the p50 / p95 / p99 marked on the curve, as field latency benchmarks show it.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from app.realtime import REALTIME

WIDTH, HEIGHT = 900, 560
MARGIN = {"left": 110, "right": 30, "top": 50, "bottom": 70}
MARKS = {"p50": 50.0, "p95": 95.0, "p99": 99.0}
INK, GRID, CURVE, DEADLINE, MARK = (20, 20, 20), (225, 225, 225), (31, 94, 180), (200, 40, 40), (230, 120, 0)


def nice_ticks(upper: float, target: int = 8) -> list[float]:
    """Round tick values from 0 to at least ``upper`` (steps of 1, 2 or 5 x 10^k)."""
    upper = max(float(upper), 1e-9)
    raw = upper / target
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    n = int(math.ceil(upper / step - 1e-9))
    return [round(i * step, 10) for i in range(n + 1)]


def _label(value: float) -> str:
    return f"{value:g}"


def plot_latency_cdf(latency_ms: np.ndarray, path: Path | str, *, deadline_ms: float = REALTIME.p95_ms,
                     title: str = "End-to-end latency") -> Path:
    """Draw the CDF of ``latency_ms`` to the PNG ``path`` (written to a temporary file, then renamed).

    Args:
        latency_ms: Per-frame latencies in milliseconds (NaN ignored); may be empty ("no frames").
        path: The ``.png`` file.
        deadline_ms: Drawn as a vertical line.
        title: Top line of the plot.
    """
    values = np.sort(np.asarray(latency_ms, dtype=np.float64))
    values = values[np.isfinite(values)]
    image = Image.new("RGB", (WIDTH, HEIGHT), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    x0, y0 = MARGIN["left"], HEIGHT - MARGIN["bottom"]
    x1, y1 = WIDTH - MARGIN["right"], MARGIN["top"]
    top = max(deadline_ms * 1.1, float(values.max()) * 1.05 if values.size else 0.0)
    ticks = nice_ticks(top)
    x_max = ticks[-1]

    def px(ms: float) -> float:
        return x0 + (x1 - x0) * ms / x_max

    def py(fraction: float) -> float:
        return y0 - (y0 - y1) * fraction

    for ms in ticks:
        draw.line([(px(ms), y0), (px(ms), y1)], fill=GRID)
        draw.line([(px(ms), y0), (px(ms), y0 + 5)], fill=INK)
        draw.text((px(ms), y0 + 8), _label(ms), fill=INK, font=font, anchor="ma")
    for fraction in (0.0, 0.25, 0.5, 0.75, 0.9, 1.0):
        draw.line([(x0, py(fraction)), (x1, py(fraction))], fill=GRID)
        draw.line([(x0 - 5, py(fraction)), (x0, py(fraction))], fill=INK)
        draw.text((x0 - 8, py(fraction)), f"{fraction:.2f}", fill=INK, font=font, anchor="rm")
    draw.rectangle([x0, y1, x1, y0], outline=INK)
    draw.text(((x0 + x1) / 2, HEIGHT - 25), "latency (ms)", fill=INK, font=font, anchor="ma")
    draw.text((12, (y0 + y1) / 2), "fraction\nof frames", fill=INK, font=font, anchor="lm")
    draw.text((x0, 18), f"{title} (n = {values.size})", fill=INK, font=font)
    for y in range(int(y1), int(y0), 8):  # the deadline, dashed
        draw.line([(px(deadline_ms), y), (px(deadline_ms), min(y + 4, y0))], fill=DEADLINE, width=2)
    draw.text((px(deadline_ms) + 4, y0 - 16), f"deadline {_label(deadline_ms)} ms", fill=DEADLINE, font=font)
    if values.size == 0:
        draw.text(((x0 + x1) / 2, (y0 + y1) / 2), "no frames", fill=INK, font=font, anchor="mm")
    else:
        fractions = np.arange(1, values.size + 1) / values.size
        points = [(px(values[0]), py(0.0))]
        for v, f_prev, f in zip(values, np.concatenate([[0.0], fractions[:-1]]), fractions):
            points += [(px(v), py(f_prev)), (px(v), py(f))]
        draw.line(points, fill=CURVE, width=2)
        for name, q in MARKS.items():
            value = float(np.percentile(values, q))
            cx, cy = px(value), py(q / 100.0)
            draw.ellipse([cx - 4, cy - 4, cx + 4, cy + 4], fill=MARK, outline=INK)
            draw.text((cx + 8, cy + 2), f"{name} {value:.1f} ms", fill=INK, font=font, anchor="lt")
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        image.save(tmp, format="PNG")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path
