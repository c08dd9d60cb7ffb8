"""Benchmarks, run side by side in one process: ``python -m hrlib.bench generator [--json FILE]`` (the procedural
slides of lesson 01) and ``python -m hrlib.bench pipeline [--json FILE] [--size N] [--region N]`` (lesson 05's input
pipeline).

They print ratios and rates measured in the same run; absolute times depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hrlib._checks import check_float, check_int, check_path
from hrlib._io import atomic_write
from hrlib.config import get_device, get_profile
from hrlib.data.slides import make_slide

__all__ = ["bench_generator", "bench_pipeline", "format_pipeline", "main", "time_it"]


def time_it(fn: Callable[[], object], *, repeats: int = 5, warmup: int = 1) -> float:
    """Median wall time of ``fn()``: compare alternatives side by side in one run (the ratio is the result, not the
    absolute time). CUDA work is synchronised before each clock reading.

    Args:
        fn: the callable to time, taking no arguments.
        repeats: timed calls (>= 1).
        warmup: untimed calls first (>= 0).

    Returns:
        The median over the timed calls, in seconds.
    """
    if not callable(fn):
        raise TypeError(f"fn must be a callable taking no arguments, got {type(fn).__name__}")
    repeats, warmup = check_int("repeats", repeats), check_int("warmup", warmup, 0)
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

    Args:
        sizes: image sides in pixels (a non-empty sequence of ints >= 8).
        min_seconds: the least time spent per size (>= 0).
        max_images: the most images per size (>= 1).

    Returns:
        One row per size: ``{"size", "images", "seconds", "images_per_s", "megapixels_per_s"}``.
    """
    if isinstance(sizes, str) or not isinstance(sizes, Sequence) or len(sizes) == 0:
        raise TypeError(f"sizes must be a non-empty sequence of ints >= 8 (pixels), got {sizes!r}")
    sizes = tuple(check_int(f"sizes[{i}]", s, 8) for i, s in enumerate(sizes))
    min_seconds, max_images = check_float("min_seconds", min_seconds, 0.0), check_int("max_images", max_images)
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


# ---------------------------------------------------------------------------------------------- pipeline (C7, C29-31)
def _median_ms(fn: Callable[[int], object], n: int) -> float:
    """Median milliseconds of ``fn(k)`` for k = 0..n-1 (each call timed on its own)."""
    ks = iter(range(n))
    return time_it(lambda: fn(next(ks)), repeats=n, warmup=0) * 1000


def _epochs_s(loader: Iterable[object], num_epochs: int) -> list[float]:
    """Seconds per epoch of iterating ``loader``."""
    return [time_it(lambda: deque(loader, maxlen=0), repeats=1, warmup=0) for _ in range(num_epochs)]


@dataclass
class _Sources:
    """The files one pipeline benchmark reads: JPEGs, zarr and LMDB stores, raw memmaps, region positions."""

    root: Path
    size: int
    region: int
    files: list[Path]
    stores: dict[str, Any]
    maps: dict[str, np.ndarray]
    spots: list[tuple[str, int, int]]
    rows: list[dict] = field(default_factory=list)

    def row(self, name: str, base: str, base_v: float, alt: str, alt_v: float, unit: str) -> None:
        self.rows.append({"name": name, "baseline": base, "baseline_value": round(base_v, 4), "alternative": alt,
                          "alternative_value": round(alt_v, 4), "unit": unit,
                          "ratio": round(base_v / max(alt_v, 1e-9), 2)})


def _make_sources(root: Path, size: int, region: int, n_images: int, seed: int) -> _Sources:
    from hrlib.pipeline.converter import write_example_images
    from hrlib.pipeline.decode import decode_image
    from hrlib.pipeline.store import open_store, write_store

    files = write_example_images(root / "jpg", n_images, size, seed=seed)
    images = {f.stem: decode_image(f) for f in files}
    tile = min(512, max(64, region))
    stores = {fmt: open_store(write_store(root / f"store.{fmt}", images, fmt=fmt, tile=tile, levels=3, force=True))
              for fmt in ("zarr", "lmdb")}
    for name, image in images.items():
        np.save(root / f"{name}.npy", image)
    maps = {name: np.load(root / f"{name}.npy", mmap_mode="r") for name in images}
    rng = np.random.default_rng(seed)
    spots = [(files[k % len(files)].stem, int(rng.integers(size - region)), int(rng.integers(size - region)))
             for k in range(30)]
    return _Sources(root, size, region, files, stores, maps, spots)


def _bench_reads(src: _Sources) -> None:
    from hrlib.pipeline.decode import decode_image
    from hrlib.pipeline.store import downsample

    r, files, spots = src.region, src.files, src.spots
    jpeg = _median_ms(lambda k: decode_image(files[k % len(files)])[:r, :r].copy(), 3)
    read = {fmt: _median_ms(lambda k, s=s: s.read_region(*spots[k], r, r), len(spots)) for fmt, s in src.stores.items()}

    def raw(k: int) -> np.ndarray:
        image_id, y, x = spots[k]
        return np.array(src.maps[image_id][y:y + r, x:x + r])

    src.row("read a region", "JPEG decode+crop", jpeg, "zarr region", read["zarr"], "ms")
    src.row("read a region", "JPEG decode+crop", jpeg, "LMDB region", read["lmdb"], "ms")
    src.row("read a region", "zarr region", read["zarr"], "memmap (raw, reference)", _median_ms(raw, len(spots)), "ms")
    shrink = _median_ms(lambda k: downsample(decode_image(files[k % len(files)]), 2), 2)
    level2 = _median_ms(lambda k: src.stores["zarr"].read_image(files[k % len(files)].stem, level=2), 3)
    src.row("low-res stage (1/4 side)", "decode+downsample", shrink, "zarr level 2", level2, "ms")


def _region_data(src: _Sources, n: int, seed: int, uint8: bool = False, **kwargs: Any) -> Any:
    """Regions with per-sample albumentations, as float CHW tensors (or uint8: 4x fewer bytes between processes)."""
    from hrlib.pipeline.loaders import RegionDataset, sample_augment
    from hrlib.pipeline.shards import to_tensor

    aug = sample_augment(seed=seed)

    def transform(image: np.ndarray) -> torch.Tensor:
        image = aug(image=image)["image"]
        return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))) if uint8 else to_tensor(image)

    return RegionDataset(src.stores["zarr"], src.region, n, seed=seed, transform=transform, **kwargs)


def _bench_loader(src: _Sources, seed: int, n: int = 96, batch: int = 8, num_epochs: int = 3) -> float:
    """Workers 0 / 2 / 2 persistent; returns the seconds one batch takes to load with 0 workers."""
    from hrlib.pipeline.loaders import make_loader

    total = {}
    for label, num_workers, persistent, uint8 in (("0", 0, False, False), ("2", 2, False, False),
                                                  ("2p", 2, True, False), ("2p8", 2, True, True)):
        loader = make_loader(_region_data(src, n, seed, uint8), batch, num_workers=num_workers,
                             persistent=persistent, seed=seed)
        total[label] = sum(_epochs_s(loader, num_epochs))
    name = f"loader, {num_epochs} epochs"
    src.row(name, "0 workers", total["0"], "2 workers", total["2"], "s")
    src.row(name, "2 workers", total["2"], "2 persistent workers", total["2p"], "s")
    src.row(name, "2 persistent (float out)", total["2p"], "2 persistent (uint8 out)", total["2p8"], "s")
    return total["0"] / (num_epochs * -(-n // batch))


def _bench_augment(src: _Sources, seed: int, n: int = 16) -> None:
    from hrlib.pipeline.loaders import batched_augment, sample_augment
    from hrlib.pipeline.shards import to_tensor

    crops = np.stack([src.stores["lmdb"].read_region(*src.spots[k % len(src.spots)], src.region, src.region)
                      for k in range(n)])
    crop = src.region * 3 // 4
    aug = sample_augment(crop, seed=seed)
    per_sample = _median_ms(lambda k: torch.stack([to_tensor(aug(image=im)["image"]) for im in crops]), 5)
    u8 = torch.from_numpy(crops).permute(0, 3, 1, 2)
    devices = [torch.device("cpu")] + ([get_device()] if get_device().type != "cpu" else [])
    for device in devices:
        def batched(k: int, device: torch.device = device) -> None:  # time_it waits for CUDA before each reading
            batched_augment(u8.to(device), seed=k, crop=crop)

        batched(0)  # warm-up: first kernel launches and allocations
        src.row(f"augment {n} regions", "albumentations per sample", per_sample, f"batched tensor ({device.type})",
                _median_ms(batched, 5), "ms")


def _bench_wait(src: _Sources, seed: int, compute_s: float, n: int = 96, batch: int = 8,
                num_epochs: int = 2) -> None:
    """Data-wait fraction with a fake accelerator step (a sleep of ``compute_s``) before and after tuning."""
    from hrlib.pipeline.loaders import StepTimer, make_loader

    data = _region_data(src, n, seed)
    fraction = {}
    for label, num_workers in (("before", 0), ("after", 2)):
        timer = StepTimer(make_loader(data, batch, num_workers=num_workers, persistent=True, prefetch=4, seed=seed),
                          sync=False)
        for _ in range(num_epochs):
            for _batch in timer:
                time.sleep(compute_s)
                timer.step_done()
        fraction[label] = timer.summary()["data_fraction"]
    src.row("data-wait fraction of step", "0 workers", fraction["before"], "2 persistent, prefetch 4",
            fraction["after"], "fraction")


def _bench_shards(src: _Sources, n: int = 256) -> None:
    from hrlib.pipeline.shards import ShardDataset, SmallFileDataset, write_shards, write_small_files

    side = min(128, src.region)
    image_id = src.files[0].stem
    samples = [(src.maps[image_id][(k * side) % (src.size - side):][:side, :side].copy(), k % 2) for k in range(n)]
    sets = {"shards": ShardDataset(write_shards(samples, src.root / "shards", shard_size=64)),
            "npy": SmallFileDataset(write_small_files(samples, src.root / "small_npy", fmt="npy")),
            "png": SmallFileDataset(write_small_files(samples, src.root / "small_png", fmt="png"))}
    ms = {k: _median_ms(lambda _, d=d: [d[i] for i in range(len(d))], 3) for k, d in sets.items()}
    src.row(f"read {n} samples of {side} px", "small png files", ms["png"], "shards (npy, memmap)", ms["shards"], "ms")
    src.row(f"read {n} samples of {side} px", "small npy files", ms["npy"], "shards (npy, memmap)", ms["shards"], "ms")


def _bench_cache(src: _Sources, seed: int, n: int = 48, batch: int = 8, num_epochs: int = 3) -> None:
    from hrlib.pipeline.loaders import RegionDataset, make_loader

    seconds = {}
    for label, cache in (("off", None), ("on", n)):
        data = RegionDataset(src.stores["zarr"], src.region, n, seed=seed, cache=cache)
        seconds[label] = sum(_epochs_s(make_loader(data, batch, num_workers=0, seed=seed), num_epochs)[1:])
    src.row(f"epochs 2-{num_epochs} of region reads", "cache off", seconds["off"], "cache on (0 workers)",
            seconds["on"], "s")


def bench_pipeline(size: int = 4096, region: int = 512, *, n_images: int = 2, seed: int = 0, threads: int = 1,
                   workdir: str | Path | None = None, log: Callable[[str], None] = print) -> dict:
    """Measure each input-pipeline lever side by side in one run (lesson 05).

    Args:
        size: side of the square source images in pixels (>= 64).
        region: side of the regions read for training (8 <= region <= size / 4).
        n_images: source images written as JPEG and converted to zarr, LMDB and a raw memmap (>= 1).
        seed: seeds image content and region positions.
        threads: torch threads in this process during the run (DataLoader workers use one each); one thread keeps
            a small shared CPU from oversubscribing, which distorts ratios.
        workdir: folder for the files (default: a temporary folder, removed afterwards).
        log: called with a line as each part starts.

    Returns:
        ``{"setup": {...}, "rows": [...]}``; each row is ``{"name", "baseline", "baseline_value", "alternative",
        "alternative_value", "unit", "ratio"}``, ratio = baseline / alternative (> 1: the alternative wins).
    """
    size, region = check_int("size", size, 64), check_int("region", region, 8)
    n_images, seed = check_int("n_images", n_images), check_int("seed", seed, 0)
    if region > size // 4:
        raise ValueError(f"region must be <= size / 4 = {size // 4}, got {region}")
    workdir = None if workdir is None else check_path("workdir", workdir)
    if not callable(log):
        raise TypeError(f"log must be a callable taking one str (e.g. print), got {type(log).__name__}")
    previous = torch.get_num_threads()
    torch.set_num_threads(check_int("threads", threads))
    try:
        with tempfile.TemporaryDirectory(prefix="hrlib-bench-") as tmp:
            root = workdir if workdir is not None else Path(tmp)
            root.mkdir(parents=True, exist_ok=True)
            log(f"writing {n_images} {size}x{size} JPEGs and their zarr / LMDB / raw memmap copies")
            src = _make_sources(root, size, region, n_images, seed)
            log("reading one region: full JPEG decode + crop vs zarr vs LMDB vs memmap; pyramid level 2")
            _bench_reads(src)
            log("DataLoader: 0 workers vs 2 vs 2 persistent")
            compute_s = _bench_loader(src, seed)
            log("per-sample albumentations vs batched tensor augmentation")
            _bench_augment(src, seed)
            log(f"data-wait fraction with a fake {compute_s * 1000:.0f} ms compute step, before and after tuning")
            _bench_wait(src, seed, compute_s)
            log("sequential shards vs many small files")
            _bench_shards(src)
            log("decoded-region cache off vs on")
            _bench_cache(src, seed)
            for store in src.stores.values():
                store.close()
    finally:
        torch.set_num_threads(previous)
    setup = {"size": size, "region": region, "n_images": n_images, "tile": min(512, max(64, region)),
             "profile": get_profile().name, "torch_threads": threads, "cpus": os.cpu_count(),
             "device": str(get_device()), "fake_compute_ms": round(compute_s * 1000, 2),
             "note": "ratios from one run; absolute times vary with machine load"}
    return {"setup": setup, "rows": src.rows}


def format_pipeline(result: dict) -> str:
    """The table of ratios printed by ``python -m hrlib.bench pipeline``.

    Args:
        result: what :func:`bench_pipeline` returns (``{"setup": {...}, "rows": [...]}``).

    Returns:
        The table, one line per row, with a header and a footer.
    """
    if not isinstance(result, Mapping) or not isinstance(result.get("setup"), Mapping) \
            or not isinstance(result.get("rows"), list):
        got = sorted(result) if isinstance(result, Mapping) else type(result).__name__
        raise TypeError(f"result must be a dict with 'setup' (a dict) and 'rows' (a list), as bench_pipeline returns, "
                        f"got {got}")
    missing = [k for k in ("n_images", "size", "region", "tile", "profile", "cpus", "device")
               if k not in result["setup"]]
    if missing:
        raise ValueError(f"result['setup'] must have the keys bench_pipeline writes; missing {missing}")
    s = result["setup"]
    lines = [f"input pipeline: {s['n_images']} sources of {s['size']}x{s['size']} px, regions {s['region']} px, "
             f"tile {s['tile']}, profile {s['profile']}, {s['cpus']} CPUs, device {s['device']}",
             f"{'comparison':<28} {'baseline':<26} {'value':>9}  {'alternative':<26} {'value':>9}  {'unit':<8} ratio"]
    for r in result["rows"]:
        lines.append(f"{r['name']:<28} {r['baseline']:<26} {r['baseline_value']:>9.3f}  {r['alternative']:<26} "
                     f"{r['alternative_value']:>9.3f}  {r['unit']:<8} x{r['ratio']:.2f}")
    lines.append("ratio = baseline / alternative (> 1: the alternative is faster or waits less)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m hrlib.bench generator|pipeline ...``.

    Args:
        argv: the command-line arguments (default ``sys.argv[1:]``).

    Returns:
        The exit status (0).
    """
    if argv is not None and (isinstance(argv, str) or not isinstance(argv, Sequence)
                             or not all(isinstance(a, str) for a in argv)):
        raise TypeError(f"argv must be a list of str (command-line arguments) or None, got {argv!r:.80}")
    parser = argparse.ArgumentParser(prog="python -m hrlib.bench", description=__doc__)
    sub = parser.add_subparsers(dest="what", required=True)
    gen = sub.add_parser("generator", help="images per second of the procedural slide generator")
    gen.add_argument("--sizes", type=int, nargs="+", default=[256, 1024], help="image sides in pixels")
    gen.add_argument("--seconds", type=float, default=2.0, help="minimum time per size")
    gen.add_argument("--json", type=Path, help="also write the results to this JSON file")
    pipe = sub.add_parser("pipeline", help="input pipeline levers side by side (store vs JPEG, workers, augment, ...)")
    pipe.add_argument("--size", type=int, help="source image side in px (default: 4096 fast, 8192 full profile)")
    pipe.add_argument("--region", type=int, default=512, help="region side in px (default 512)")
    pipe.add_argument("--images", type=int, default=2, help="number of source images (default 2)")
    pipe.add_argument("--seed", type=int, default=0, help="seed for image content and region positions")
    pipe.add_argument("--json", type=Path, help="also write the results to this JSON file (atomically)")
    ns = parser.parse_args(argv)
    if ns.what == "pipeline":
        return _main_pipeline(parser, ns)
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
        atomic_write(ns.json, lambda fh: json.dump({"generator": rows, "numpy": np.__version__}, fh, indent=2))
    return 0


def _main_pipeline(parser: argparse.ArgumentParser, ns: argparse.Namespace) -> int:
    size = ns.size if ns.size is not None else get_profile().pick(4096, 8192)
    if size < 64 or not 8 <= ns.region <= size // 4 or ns.images < 1 or ns.seed < 0:
        parser.error(f"--size must be >= 64, --region in [8, size / 4], --images >= 1 and --seed >= 0, got "
                     f"size={size}, region={ns.region}, images={ns.images}, seed={ns.seed}")
    start = time.perf_counter()
    result = bench_pipeline(size, ns.region, n_images=ns.images, seed=ns.seed,
                            log=lambda line: print(f"[{time.perf_counter() - start:6.1f} s] {line}", flush=True))
    result["setup"]["seconds"] = round(time.perf_counter() - start, 1)
    print(format_pipeline(result))
    print(f"total {result['setup']['seconds']} s")
    if ns.json:
        atomic_write(ns.json, lambda fh: json.dump(result, fh, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
