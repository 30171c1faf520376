"""Entry point of the ``condensa`` command: subcommands, exit codes, one-line errors."""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Sequence

from rich.console import Console

from condensa.errors import CondensaError, ConfigError

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="condensa", description="Programmable model compression for PyTorch."
    )
    parser.add_argument("--debug", action="store_true", help="print tracebacks on errors")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = commands.add_parser(
        "demo", help="train a small CNN on scikit-learn digits and compress it two ways"
    )
    demo.add_argument("--epochs", type=int, default=15, help="baseline training epochs")
    demo.add_argument("--finetune-epochs", type=int, default=5, help="masked fine-tuning epochs")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    demo.add_argument("-q", "--quiet", action="store_true", help="print only the summary")
    return parser


def _positive(name: str, value: int) -> int:
    if value < 1:
        raise ConfigError(f"--{name} must be a positive integer, got {value}")
    return value


def _demo(args: argparse.Namespace, console: Console) -> int:
    from condensa.cli.demo import DemoConfig, run_demo

    config = DemoConfig(
        epochs=_positive("epochs", args.epochs),
        finetune_epochs=_positive("finetune-epochs", args.finetune_epochs),
        seed=args.seed,
        threads=_positive("threads", args.threads),
    )
    run_demo(config, console)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 ok, 1 failure, 2 usage/config error)."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code or 0)
    # at least 132 columns so tables stay readable in logs and pipes
    width = max(132, shutil.get_terminal_size((132, 24)).columns)
    console = Console(quiet=getattr(args, "quiet", False), width=width)
    errors = Console(stderr=True)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return {"demo": _demo}[args.command](args, console)
    except ConfigError as exc:
        if args.debug:
            raise
        errors.print(f"condensa: error: {exc}", markup=False, highlight=False)
        return EXIT_USAGE
    except CondensaError as exc:
        if args.debug:
            raise
        errors.print(f"condensa: error: {exc}", markup=False, highlight=False)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        errors.print("condensa: interrupted")
        return EXIT_FAILURE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
