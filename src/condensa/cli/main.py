"""Entry point of the ``condensa`` command: subcommands, exit codes, one-line errors."""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Iterable, Sequence
from typing import NoReturn

from rich.console import Console

from condensa.errors import CondensaError, ConfigError
from condensa.objectives import objective_names
from condensa.optim.methods import METHODS
from condensa.search import strategy_names

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def _names(registry: Iterable[str]) -> str:
    """A registry's names for help text: ``a, b or c`` (those registered at import)."""
    names = list(registry)
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


class _Parser(argparse.ArgumentParser):
    """argparse with usage errors as one ``condensa: error:`` line (exit 2)."""

    def error(self, message: str) -> NoReturn:
        """Print one line naming the problem and where help is, then exit 2."""
        self.exit(EXIT_USAGE, f"condensa: error: {message} (see {self.prog} --help)\n")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-q", "--quiet", action="store_true", help="print only the summary")
    parser.add_argument("-v", "--verbose", action="store_true", help="show training progress bars")


def _run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="run config (TOML); see docs/getting_started.md")
    parser.add_argument("-o", "--output", help="run directory (config key: output)")
    parser.add_argument("--seed", type=int, help="config key: seed")
    parser.add_argument("--threads", type=int, help="torch CPU threads (config key: threads)")
    parser.add_argument("--device", help="cpu or cuda (config key: device)")
    parser.add_argument("--method", help=f"{_names(METHODS)} (config key: method.name)")
    parser.add_argument("--max-drop", type=float, help="config key: constraint.max_drop")
    parser.add_argument(
        "-s",
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any config key, e.g. --set method.options.steps=100 (repeatable)",
    )
    parser.add_argument(
        "--force", action="store_true", help="replace a different run in the output directory"
    )
    _common(parser)


def _model_options(parser: argparse.ArgumentParser, *, shape_required: bool) -> None:
    parser.add_argument("model", help="a file written by condensa.save (*.condensa)")
    parser.add_argument(
        "--factory",
        metavar="PACKAGE.MODULE:FUNCTION",
        help="builds the architecture of a file saved with factory= (a file never names "
        "code that loading runs; zoo models need no flag)",
    )
    parser.add_argument(
        "--input-size",
        dest="input_size",
        required=shape_required,
        help="size of an example input batch, e.g. 1,1,28,28 (as stats(input_size=))",
    )
    parser.add_argument(
        "--input-dtype",
        default="float32",
        choices=("float32", "int64"),
        help="int64 for token inputs of language models",
    )


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="condensa", description="Programmable model compression for PyTorch.")
    parser.add_argument("--debug", action="store_true", help="print tracebacks on errors")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    demo = commands.add_parser(
        "demo",
        help="search the sparsity of a small digits CNN twice (memory, then throughput)",
    )
    demo.add_argument("-o", "--output", default="runs/demo", help="where the two runs go")
    demo.add_argument("--budget", type=int, default=10, help="compressions per search")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    demo.add_argument("--force", action="store_true", help="replace earlier demo runs")
    _common(demo)
    search = commands.add_parser(
        "search", help="infer the sparsity that maximizes the objective under the constraint"
    )
    _run_options(search)
    search.add_argument("--budget", type=int, help="config key: search.budget")
    search.add_argument(
        "--objective", help=f"{_names(objective_names())} (config key: objective.name)"
    )
    search.add_argument(
        "--strategy", help=f"{_names(strategy_names())} (config key: search.strategy)"
    )
    search.add_argument(
        "--workers",
        type=int,
        help="trials at once on a local Ray (needs condensa[ray]; config key: search.workers)",
    )
    search.add_argument(
        "--ray-address",
        help="join this Ray cluster for the trials (config key: search.ray_address)",
    )
    compress = commands.add_parser("compress", help="compress once at a given sparsity")
    _run_options(compress)
    compress.add_argument("--sparsity", type=float, help="config key: search.sparsity")
    report = commands.add_parser("report", help="write report.md and report.html of a run")
    report.add_argument("run_dir", help="a run directory written by search or compress")
    _common(report)
    stats = commands.add_parser("stats", help="per-layer sparsity, bytes and MACs of a saved model")
    _model_options(stats, shape_required=False)
    _common(stats)
    thin = commands.add_parser("thin", help="remove pruned filters/neurons; show the gains")
    _model_options(thin, shape_required=True)
    thin.add_argument("-o", "--output", help="write the thinned model: *.onnx or *.pt2")
    _common(thin)
    export = commands.add_parser("export", help="export the deployable model to ONNX")
    _model_options(export, shape_required=True)
    export.add_argument("-o", "--output", required=True, help="destination *.onnx")
    _common(export)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 ok, 1 failure, 2 usage/config error)."""
    from condensa.cli import commands

    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code or 0)
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            # progress lines appear as they happen in logs too; odd bytes in paths never crash
            stream.reconfigure(line_buffering=True, errors="backslashreplace")
    # at least 132 columns so tables stay readable in logs and pipes (print_table never
    # cuts a table short when the output is not a terminal)
    width = max(132, shutil.get_terminal_size((132, 24)).columns)
    console = Console(
        quiet=getattr(args, "quiet", False), width=width, highlight=False, markup=False
    )
    errors = Console(stderr=True, markup=False, highlight=False, width=2000)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    handlers = {
        "demo": commands.demo,
        "search": commands.search,
        "compress": commands.compress,
        "report": commands.report,
        "stats": commands.stats,
        "thin": commands.thin,
        "export": commands.export,
    }
    try:
        handlers[args.command](args, console)
        return EXIT_OK
    except KeyboardInterrupt:
        errors.print("condensa: interrupted (a search resumes when run again)")
        return EXIT_FAILURE
    except Exception as exc:
        if args.debug:
            raise
        message, code = _error_message(exc)
        errors.print(f"condensa: error: {message}", soft_wrap=True)
        return code


def _error_message(exc: Exception) -> tuple[str, int]:
    """The one-line message and exit code for an error that ended a command."""
    if isinstance(exc, ConfigError):
        return str(exc), EXIT_USAGE
    if isinstance(exc, CondensaError):
        return str(exc), EXIT_FAILURE
    if isinstance(exc, OSError):  # a full disk, a read-only folder, a vanished file...
        where = f"{exc.filename}: " if exc.filename else ""
        return (
            f"{where}{exc.strerror or exc} (nothing valid was overwritten; a search resumes "
            "when run again)",
            EXIT_FAILURE,
        )
    import torch  # loaded by every command that can fail this way

    if isinstance(exc, torch.distributed.DistError):
        return (
            f"another process of this torchrun launch failed or stopped answering "
            f"({type(exc).__name__}: {_first_line(exc)}); finished trials are journaled: run "
            "the same command again to resume",
            EXIT_FAILURE,
        )
    if isinstance(exc, MemoryError):
        return "out of memory (try a smaller batch_size or model)", EXIT_FAILURE
    first = _first_line(exc)
    return (
        f"internal error: {type(exc).__name__}: {first} (run with --debug for the traceback, "
        "and please report it)",
        EXIT_FAILURE,
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
