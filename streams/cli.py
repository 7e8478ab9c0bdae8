"""The ``segmenter`` command: one entry point, one subcommand per thing a user does."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from streams import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="segmenter",
        description="Real-time customer segmentation on Kafka.",
    )
    parser.add_argument("--version", action="version", version=f"segmenter {__version__}")
    parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
