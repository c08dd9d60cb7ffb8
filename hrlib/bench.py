"""Benchmarks, run side by side in one process: ``python -m hrlib.bench generator [--json FILE]``.

They print ratios and rates measured in the same run; absolute times depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from hrlib.data import make_slide


def time_it(fn: Callable[[], object], *, repeats: int = 5, warmup: int = 1) -> float:
    """Median wall time in seconds of ``fn()`` over ``repeats`` calls, after ``warmup`` untimed calls.

    Use it to compare alternatives side by side in one run; the ratio is the result, not the absolute time.
    CUDA work is synchronised before each clock reading.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats must be >= 1 and warmup >= 0, got repeats={repeats}, warmup={warmup}")
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def bench_generator(sizes: tuple[int, ...] = (256, 1024), min_seconds: float = 2.0, max_images: int = 50) -> list[dict]:
    """Images per second of ``make_slide`` at each size (single process, the calling thread).

    Each size renders slides with successive seeds until ``min_seconds`` have passed or ``max_images`` were made.
    """
    rows = []
    make_slide(64, seed=0)  # warm-up: imports, caches
    for size in sizes:
        n, start = 0, time.perf_counter()
        while n < max_images and (n == 0 or time.perf_counter() - start < min_seconds):
            make_slide(size, seed=n)
            n += 1
        elapsed = time.perf_counter() - start
        rows.append({"size": size, "images": n, "seconds": round(elapsed, 3), "images_per_s": round(n / elapsed, 2),
                     "megapixels_per_s": round(n * size * size / elapsed / 1e6, 2)})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hrlib.bench", description=__doc__)
    sub = parser.add_subparsers(dest="what", required=True)
    gen = sub.add_parser("generator", help="images per second of the procedural slide generator")
    gen.add_argument("--sizes", type=int, nargs="+", default=[256, 1024], help="image sides in pixels")
    gen.add_argument("--seconds", type=float, default=2.0, help="minimum time per size")
    gen.add_argument("--json", type=Path, help="also write the results to this JSON file")
    ns = parser.parse_args(argv)
    if any(s < 8 for s in ns.sizes):
        parser.error(f"--sizes must be >= 8 pixels, got {ns.sizes}")
    rows = bench_generator(tuple(ns.sizes), ns.seconds)
    print(f"make_slide on {platform.processor() or platform.machine()}, torch threads={torch.get_num_threads()}")
    print(f"{'size':>6} {'images':>7} {'images/s':>9} {'Mpx/s':>7}  relative cost per image")
    base = rows[0]["images_per_s"]
    for r in rows:
        print(f"{r['size']:>6} {r['images']:>7} {r['images_per_s']:>9.2f} {r['megapixels_per_s']:>7.2f}  "
              f"x{base / r['images_per_s']:.1f} (pixels x{(r['size'] / rows[0]['size']) ** 2:.0f})")
    if ns.json:
        ns.json.write_text(json.dumps({"generator": rows, "numpy": np.__version__}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
