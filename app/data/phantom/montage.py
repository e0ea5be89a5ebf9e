"""PNG montages of phantom cases: frames across the cycle (columns) x quality (rows), contours drawn.

The pictures in ``docs/`` come from::

    python -m app.data.phantom.montage --modality echo --out docs/phantom_echo.png --per-bin 2 --cols 4 --bmode-per-bin 1
    python -m app.data.phantom.montage --modality cine --out docs/phantom_cine.png --per-bin 1 --cols 4
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import cv2
import numpy as np

from app.data.case import Case

log = logging.getLogger(__name__)

CONTOUR_COLOURS = {1: (255, 80, 80), 2: (80, 255, 80), 3: (80, 160, 255)}  # RGB per label value


def _to_rgb(image: np.ndarray) -> np.ndarray:
    """Any displayable frame -> ``(H, W, 3)`` uint8 RGB (float MR scaled to its 99th percentile)."""
    if image.ndim == 3:
        return image.copy()
    if image.dtype != np.uint8:
        hi = float(np.percentile(image, 99.5)) or 1.0
        image = np.clip(image / hi * 255.0, 0, 255).astype(np.uint8)
    return np.repeat(image[..., None], 3, axis=2)


def overlay_contours(image: np.ndarray, labels: np.ndarray, scale: int = 1) -> np.ndarray:
    """Frame with each label's outline drawn, upscaled by ``scale``. Returns ``(H*s, W*s, 3)`` uint8."""
    rgb = _to_rgb(image)
    if scale != 1:
        rgb = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
        labels = cv2.resize(labels, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    for value in np.unique(labels):
        if value == 0:
            continue
        mask = (labels == value).astype(np.uint8)
        contours, _ = cv2.findContours(mask, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(rgb, contours, -1, CONTOUR_COLOURS.get(int(value), (255, 255, 0)), 1, cv2.LINE_AA)
    return rgb


def cycle_frames(case: Case, n: int) -> list[int]:
    """``n`` frame indices spread over one cycle from ED, ES included."""
    ed = case.ed or 0
    es = case.es if case.es is not None else case.n_frames // 3
    period = max(2 * (es - ed) + 2, n)
    picks = sorted({min(case.n_frames - 1, ed + round(k * period / n)) for k in range(n)} | {es})
    return picks[:n] if len(picks) > n else picks


def montage(rows: list[tuple[str, Case]], n_cols: int, slice_index: int | None = None, scale: int = 1) -> np.ndarray:
    """One row per case (labelled with its caption), ``n_cols`` frames across the cycle."""
    tiles = []
    for caption, case in rows:
        row = []
        for t in cycle_frames(case, n_cols):
            img = case.frames[t] if slice_index is None else case.frames[t, slice_index]
            lab = case.labels[t] if slice_index is None else case.labels[t, slice_index]
            tile = overlay_contours(img, lab, scale)
            tag = f"{caption} t={t}" + (" ED" if t == case.ed else " ES" if t == case.es else "")
            cv2.putText(tile, tag, (3, tile.shape[0] - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.33, (255, 255, 255), 1, cv2.LINE_AA)
            row.append(tile)
        while len(row) < n_cols:
            row.append(np.zeros_like(row[0]))
        tiles.append(np.concatenate(row, axis=1))
    width = max(t.shape[1] for t in tiles)
    tiles = [np.pad(t, ((0, 0), (0, width - t.shape[1]), (0, 0))) for t in tiles]
    return np.concatenate(tiles, axis=0)


def pick_by_quality(render, seed: int, per_bin: int, max_tries: int = 200) -> list[tuple[str, Case]]:
    """Render cases until each quality bin has ``per_bin`` examples (good first)."""
    wanted = {"good": [], "medium": [], "poor": []}
    for idx in range(max_tries):
        case = render(seed, idx)
        bucket = wanted[case.quality_bin]
        if len(bucket) < per_bin:
            bucket.append((f"{case.quality_bin} q={case.quality:.2f}", case))
        if all(len(v) >= per_bin for v in wanted.values()):
            break
    return wanted["good"] + wanted["medium"] + wanted["poor"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modality", choices=("echo", "bmode", "cine"), required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--per-bin", type=int, default=2)
    parser.add_argument("--cols", type=int, default=5)
    parser.add_argument("--shrink", type=float, default=0.75, help="scale the final picture (keeps the PNG small)")
    parser.add_argument("--bmode-per-bin", type=int, default=0, help="echo: add B-mode rows")
    args = parser.parse_args(argv)
    if args.modality in ("echo", "bmode"):
        from app.data.phantom.echo import render_echo_case

        variant = "contrast" if args.modality == "echo" else "bmode"
        rows = pick_by_quality(lambda s, i: render_echo_case(s, i, variant=variant), args.seed, args.per_bin)
        if args.modality == "echo" and args.bmode_per_bin:  # the plain B-mode variant (CAMUS labels) below
            rows += pick_by_quality(lambda s, i: render_echo_case(s, i, variant="bmode"), args.seed + 1, args.bmode_per_bin)
        image = montage(rows, args.cols)
    else:
        from app.data.phantom.cine import render_cine_case

        rows = pick_by_quality(render_cine_case, args.seed, args.per_bin)
        image = np.concatenate([montage(rows, args.cols, slice_index=z, scale=2) for z in (1, 5)], axis=0)
    if args.shrink != 1.0:
        image = cv2.resize(image, None, fx=args.shrink, fy=args.shrink, interpolation=cv2.INTER_AREA)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
