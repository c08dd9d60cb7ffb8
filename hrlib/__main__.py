"""``python -m hrlib`` / the ``hrlib`` console script: a small command index."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hrlib", description="hrlib command-line tools")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="print the profile, device and versions")
    bench = sub.add_parser("bench", help="run a benchmark (see `python -m hrlib.bench --help`)")
    bench.add_argument("args", nargs=argparse.REMAINDER)
    ns = parser.parse_args(argv)
    if ns.command == "info":
        from hrlib.config import describe

        print(describe())
        return 0
    from hrlib.bench import main as bench_main

    return bench_main(ns.args)


if __name__ == "__main__":
    sys.exit(main())
