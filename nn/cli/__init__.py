"""The command line: `python -m nn train | evaluate | predict | inspect | plot | gradcheck | sanity | data`.

One module per command, each with `add_parser(sub, common)` and `run(args)`;
COMMANDS lists them in the order `--help` shows them.
"""

import argparse
import importlib
import sys

from nn.cli._common import EPILOG, common_parser
from nn.errors import NNError
from nn.fast import config

COMMANDS = ("train", "evaluate", "predict", "inspect", "plot", "gradcheck", "sanity", "data")


def build_parser():
    """The argparse parser for every command."""
    parser = argparse.ArgumentParser(prog="nn", description=__doc__.split("\n")[0], epilog=EPILOG)
    sub = parser.add_subparsers(dest="command", required=True)
    common = common_parser()
    for name in COMMANDS:
        importlib.import_module(f"nn.cli.{name}").add_parser(sub, common)
    return parser


def main(argv=None):
    """Entry point of `nn` and `python -m nn`; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        config.check()  # a bad NN_* setting is refused before any command starts
        return args.func(args)
    except NNError as exc:
        print(f"nn {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # str(exc): how to resume, after a BackupAndRestore backup
        print(f"nn {args.command}: {exc or 'interrupted'}", file=sys.stderr)
        return 130
    except OSError as exc:
        print(f"nn {args.command}: error: {exc}", file=sys.stderr)
        return 2
