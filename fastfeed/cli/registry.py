"""The command registry: each command module registers itself with :func:`command`
(an argument function and a ``run(args) -> int``); :func:`build_parser` builds the
argparse tree from the table."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import NoReturn

from ._common import PROG
from .exitcodes import EXIT_STATUS_HELP, UsageError

__all__ = ["COMMANDS", "PROG", "Runner", "build_parser", "command"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: error: {message}")


Runner = Callable[[argparse.Namespace], int]
#: name -> (help, add_arguments, run, description, epilog), in registration (= help) order
COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Runner, str, str]] = {}


def command(
    name: str, help: str, *, description: str = "", epilog: str = ""
) -> Callable[[Callable[[argparse.ArgumentParser], None]], Callable[[Runner], Runner]]:
    """Register a subcommand: ``@command(name, help)`` on the function adding its
    arguments returns a decorator for its ``run(args) -> int``."""

    def with_args(add_arguments: Callable[[argparse.ArgumentParser], None]) -> Callable[[Runner], Runner]:
        def with_run(run: Runner) -> Runner:
            COMMANDS[name] = (help, add_arguments, run, description, epilog)
            return run

        return with_run

    return with_args


_TOP_EPILOG = (
    EXIT_STATUS_HELP
    + """
environment:
  FASTFEED_URL          default endpoint of watch and record (else the DigiFinex URL)
  FASTFEED_API_KEY      API key for private channels (watch --orders/--balance) and an
  FASTFEED_API_SECRET   account of the local exchange; used only when both are set
  NO_COLOR, COLUMNS     honoured by the terminal view (rich)

Run `fastfeed COMMAND --help` for a command's flags. Start with `fastfeed demo`.
"""
)


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every registered subcommand."""
    from .. import __version__

    common = _Parser(add_help=False)
    g = common.add_argument_group("logging (stdlib logging on stderr)")
    g.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=argparse.SUPPRESS,
        help="more log output (-v INFO, -vv DEBUG)",
    )
    g.add_argument(
        "-q",
        "--quiet",
        action="count",
        default=argparse.SUPPRESS,
        help="less log output (-q ERROR, -qq CRITICAL)",
    )
    g.add_argument(
        "--log-level",
        default=argparse.SUPPRESS,
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="set the level directly (default WARNING)",
    )
    parser = _Parser(
        prog=PROG,
        description="fastfeed: DigiFinex spot WebSocket v1 feed handler tools",
        parents=[common],
        epilog=_TOP_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (help_text, add_arguments, run, description, epilog) in COMMANDS.items():
        p = sub.add_parser(
            name,
            help=help_text,
            description=description or help_text,
            epilog=epilog or None,
            parents=[common],
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        add_arguments(p)
        p.set_defaults(_run=run)
    return parser
