"""Plausible wrong answers for exercise 05: {exercise id: [(wrong function, a word its rejection must contain)]}."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


def _assemble(tiles, tile, y, x, h, w, *, last=lambda v, n, t: (v + n - 1) // t, swap_keys=False, offset=True,
              dtype=None):
    channels = tiles[(0, 0)].shape[2]
    out = np.zeros((h, w, channels), dtype or tiles[(0, 0)].dtype)
    for r in range(y // tile, last(y, h, tile) + 1):
        for c in range(x // tile, last(x, w, tile) + 1):
            t = tiles[(c, r) if swap_keys else (r, c)]
            th, tw = t.shape[:2]
            y0, x0 = r * tile, c * tile
            ty0, ty1 = max(y, y0), min(y + h, y0 + th)
            tx0, tx1 = max(x, x0), min(x + w, x0 + tw)
            if ty1 <= ty0 or tx1 <= tx0:
                continue
            if offset:
                out[ty0 - y:ty1 - y, tx0 - x:tx1 - x] = t[ty0 - y0:ty1 - y0, tx0 - x0:tx1 - x0]
            else:
                out[ty0 - y:ty1 - y, tx0 - x:tx1 - x] = t[:ty1 - ty0, :tx1 - tx0]
    return out


def region_first_tile_only(tiles, tile, y, x, h, w):
    r, c = y // tile, x // tile
    return tiles[(r, c)][y - r * tile:y - r * tile + h, x - c * tile:x - c * tile + w]


def region_end_off_by_one(tiles, tile, y, x, h, w):  # asks for the tile after an aligned end
    return _assemble(tiles, tile, y, x, h, w, last=lambda v, n, t: (v + n) // t)


def region_swapped_keys(tiles, tile, y, x, h, w):
    return _assemble(tiles, tile, y, x, h, w, swap_keys=True)


def region_full_tiles(tiles, tile, y, x, h, w):  # a canvas of whole tiles: assumes every tile is tile x tile
    rows = range(y // tile, (y + h - 1) // tile + 1)
    cols = range(x // tile, (x + w - 1) // tile + 1)
    canvas = np.zeros((len(rows) * tile, len(cols) * tile, 3), np.uint8)
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            canvas[i * tile:(i + 1) * tile, j * tile:(j + 1) * tile] = tiles[(r, c)]
    oy, ox = y - rows[0] * tile, x - cols[0] * tile
    return canvas[oy:oy + h, ox:ox + w]


def region_no_offset(tiles, tile, y, x, h, w):  # copies each tile from its top-left corner
    return _assemble(tiles, tile, y, x, h, w, offset=False)


def region_float(tiles, tile, y, x, h, w):
    return _assemble(tiles, tile, y, x, h, w, dtype=np.float32)


def region_stitch_then_no_offset(tiles, tile, y, x, h, w):  # stitches the tile rows, crops from the corner
    rows = range(y // tile, (y + h - 1) // tile + 1)
    cols = range(x // tile, (x + w - 1) // tile + 1)
    big = np.concatenate([np.concatenate([tiles[(r, c)] for c in cols], axis=1) for r in rows], axis=0)
    return big[:h, :w]


def region_transposed(tiles, tile, y, x, h, w):
    return _assemble(tiles, tile, y, x, h, w).transpose(1, 0, 2)


def region_no_return(tiles, tile, y, x, h, w):
    _assemble(tiles, tile, y, x, h, w)


def _split(steps):
    arr = np.asarray(steps, dtype=float)
    return arr[:, 0], arr[:, 1]


def fraction_no_warmup(steps, warmup=1):
    wait, compute = _split(steps)
    return wait.sum() / (wait + compute).sum()


def fraction_mean_of_ratios(steps, warmup=1):
    wait, compute = _split(steps[warmup:])
    return float(np.mean(wait / (wait + compute)))


def fraction_over_compute(steps, warmup=1):
    wait, compute = _split(steps[warmup:])
    return wait.sum() / compute.sum()


def fraction_utilization(steps, warmup=1):
    wait, compute = _split(steps[warmup:])
    return compute.sum() / (wait + compute).sum()


def fraction_percent(steps, warmup=1):
    wait, compute = _split(steps[warmup:])
    return 100 * wait.sum() / (wait + compute).sum()


def fraction_always_skip_one(steps, warmup=1):
    wait, compute = _split(steps[1:])
    return wait.sum() / (wait + compute).sum()


def fraction_skip_one_more(steps, warmup=1):
    wait, compute = _split(steps[warmup + 1:])
    return wait.sum() / (wait + compute).sum()


def fraction_as_string(steps, warmup=1):
    wait, compute = _split(steps[warmup:])
    return f"{wait.sum() / (wait + compute).sum():.0%}"


WRONG: dict[str, list[tuple[Callable[..., Any], str]]] = {
    "05.read_region": [
        (region_first_tile_only, "every tile"),
        (region_end_off_by_one, "(y + h - 1) // tile"),
        (region_swapped_keys, "(row, col)"),
        (region_full_tiles, "shorter"),
        (region_no_offset, "offset"),
        (region_stitch_then_no_offset, "offset"),
        (region_float, "uint8"),
        (region_transposed, "swapped"),
        (region_no_return, "return"),
    ],
    "05.data_fraction": [
        (fraction_no_warmup, "warmup"),
        (fraction_mean_of_ratios, "sum the wait"),
        (fraction_over_compute, "wait + compute"),
        (fraction_utilization, "utilization"),
        (fraction_percent, "percent"),
        (fraction_always_skip_one, "warmup"),
        (fraction_skip_one_more, "warmup"),
        (fraction_as_string, "one number"),
    ],
}
