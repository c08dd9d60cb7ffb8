"""``python -m hrlib`` / the ``hrlib`` console script: a small command index."""

from __future__ import annotations

import argparse
import sys


def _add_convert(sub: argparse._SubParsersAction) -> None:
    from hrlib.pipeline.converter import ON_ERROR
    from hrlib.pipeline.store import FORMATS

    p = sub.add_parser("convert", help="convert image files into a tile store (zarr or LMDB, with a pyramid)")
    p.add_argument("src", help="an image file or a folder of .jpg/.jpeg/.png/.tif/.tiff files")
    p.add_argument("dst", help="the store folder to create")
    p.add_argument("--format", dest="fmt", choices=FORMATS, default="zarr", help="store format (default zarr)")
    p.add_argument("--tile", type=int, default=512, help="chunk / tile side in pixels (default 512)")
    p.add_argument("--levels", type=int, default=3, help="pyramid levels, each half the previous side (default 3)")
    p.add_argument("--resume", action="store_true", help="finish an interrupted conversion")
    p.add_argument("--force", action="store_true", help="replace an existing store at DST")
    p.add_argument("--on-error", choices=ON_ERROR, default="stop",
                   help="an unreadable input stops the run (default) or is skipped and reported")
    p.add_argument("--max-pixels", type=int, default=None,
                   help="largest accepted width x height per image (default: PIL's limit, about 179 megapixels)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _convert(ns: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from hrlib.pipeline.converter import ConvertError, convert

    try:
        result = convert(ns.src, ns.dst, fmt=ns.fmt, tile=ns.tile, levels=ns.levels, resume=ns.resume,
                         force=ns.force, on_error=ns.on_error, max_pixels=ns.max_pixels, progress=not ns.quiet)
    except (ValueError, TypeError, FileExistsError) as e:
        parser.error(str(e))  # exits with status 2
    except ConvertError as e:
        print(f"hrlib convert: error: {e}", file=sys.stderr)
        return 1
    print(f"{ns.dst}: {len(result['converted'])} converted, {len(result['skipped'])} already done, "
          f"{len(result['failed'])} failed")
    for file, reason in result["failed"].items():
        print(f"  failed: {file}: {reason}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``hrlib info | bench | convert | train | verify``: the command index.

    Args:
        argv: the command-line arguments (None: ``sys.argv[1:]``).

    Returns:
        The exit status.
    """
    parser = argparse.ArgumentParser(prog="hrlib", description="hrlib command-line tools")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="print the profile, device and versions")
    bench = sub.add_parser("bench", help="run a benchmark (see `python -m hrlib.bench --help`)")
    bench.add_argument("args", nargs=argparse.REMAINDER)
    _add_convert(sub)
    from hrlib.train.runner import add_arguments

    add_arguments(sub.add_parser("train", help="train from a .toml/.yaml config (one process or under torchrun)"))
    check = sub.add_parser("verify", help="check a store: manifest, chunk checksums, missing chunks, sha256")
    check.add_argument("dst", help="the store folder")
    ns = parser.parse_args(argv)
    if ns.command == "info":
        from hrlib.config import describe

        print(describe())
        return 0
    if ns.command == "convert":
        return _convert(ns, sub.choices["convert"])
    if ns.command == "train":
        from hrlib.train.runner import run_cli

        return run_cli(ns)
    if ns.command == "verify":
        from hrlib.pipeline.store import verify

        try:
            problems = verify(ns.dst)
        except (TypeError, ValueError) as e:
            sub.choices["verify"].error(str(e))  # exits with status 2
        for line in problems:
            print(line)
        print(f"{ns.dst}: {'healthy' if not problems else f'{len(problems)} problem(s)'}")
        return 1 if problems else 0
    from hrlib.bench import main as bench_main

    return bench_main(ns.args)


if __name__ == "__main__":
    sys.exit(main())
