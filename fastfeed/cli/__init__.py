"""The ``fastfeed`` command line (also ``python -m fastfeed``).

One module per command (``demo``, ``watch``, ``record``, ``replay``, ``export``, ``bench``,
``exchange``); each registers itself with :func:`~fastfeed.cli.registry.command` (an
argparse sub-parser and a ``run(args) -> int``). Shared helpers are in ``_common``; exit
statuses and the exceptions carrying them in :mod:`fastfeed.cli.exitcodes`.

Exit status: 0 success; 1 other runtime error; 2 bad arguments; 3 connection failure;
4 bad file; 130 Ctrl-C during ``replay``/``export``/``bench`` (Ctrl-C is the normal way to
stop ``demo``, ``watch``, ``record`` and ``exchange``: they print their summary and exit 0).
Expected failures print one line on stderr (``fastfeed CMD: error: ...``), never a traceback.

To add a command: a module here with an argument function and a ``run(args) -> int``
registered with ``@command(name, help, ...)(add_arguments)``, imported below (the import
order is the order in ``fastfeed --help``).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import sys
from collections.abc import Sequence

from ._common import (  # noqa: F401 - re-exported for tests and tools
    CHANNELS,
    DEMO_SYMBOLS,
    PROG,
    _quiet_transport_errors,
    _safe,
    _SafeFormatter,
    _silence_stdout,
    _symbol_list,
    log,
)
from .exitcodes import (
    EXIT_CONNECT,
    EXIT_ERROR,
    EXIT_FILE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    CommandError,
    ConnectError,
    FileError,
    UsageError,
)
from .registry import COMMANDS, build_parser, command

#: the command modules, in ``fastfeed --help`` order (each registers itself on import)
COMMAND_MODULES = ("demo", "watch", "record", "replay", "export", "bench", "exchange", "publish", "archive")
for _name in COMMAND_MODULES:
    importlib.import_module(f"{__name__}.{_name}")
del _name

__all__ = [
    "EXIT_CONNECT",
    "EXIT_ERROR",
    "EXIT_FILE",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "CommandError",
    "ConnectError",
    "FileError",
    "UsageError",
    "build_parser",
    "command",
    "main",
]


def _log_level(args: argparse.Namespace) -> int:
    if hasattr(args, "log_level"):
        return int(getattr(logging, args.log_level))
    level = logging.WARNING - 10 * getattr(args, "verbose", 0) + 10 * getattr(args, "quiet", 0)
    return max(logging.DEBUG, min(logging.CRITICAL, level))


def _namespace_shadow() -> str | None:
    """Why ``fastfeed`` is an empty namespace package here, or None (it is not).

    An editable fastfeed (``pip install -e``) is found by a finder Python asks only after
    the path's namespace portions, so a plugin installed into site-packages/fastfeed (the
    fastfeed-cryptofeed package) hides it from programs started outside the clone's root,
    this command included: fastfeed's ``__init__`` never runs."""
    import fastfeed

    if getattr(fastfeed, "__file__", None) is not None:
        return None
    return (
        f"{PROG}: error: fastfeed resolved to an empty namespace package "
        f"({', '.join(fastfeed.__path__)}): fastfeed is installed in editable mode (pip install -e) and "
        "a plugin installed into site-packages/fastfeed hides it. Install fastfeed without -e "
        "(from the clone: pip install . ./plugins/cryptofeed), or put the clone first on the path "
        "(PYTHONPATH=/path/to/clone)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fastfeed`` command; returns the exit status."""
    shadow = _namespace_shadow()
    if shadow is not None:
        print(shadow, file=sys.stderr)
        return EXIT_ERROR
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            raise UsageError(f"{PROG}: error: a command is required (one of: {', '.join(COMMANDS)})")
    except UsageError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as exc:  # --help, --version
        return exc.code if isinstance(exc.code, int) else 0
    handler = logging.StreamHandler()
    handler.setFormatter(_SafeFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=_log_level(args), handlers=[handler])
    try:
        return int(args._run(args))
    except CommandError as exc:
        msg = _safe(str(exc))
        if not msg.startswith(PROG):
            msg = f"{PROG} {args.command}: error: {msg}"
        print(msg, file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `fastfeed ... | head`: the reader is gone, which is fine
        _silence_stdout()
        return EXIT_OK
    except Exception as exc:  # one line, no traceback, for operational errors
        log.debug("unexpected error", exc_info=True)
        print(f"{PROG} {args.command}: error: {_safe(str(exc)) or type(exc).__name__}", file=sys.stderr)
        return EXIT_ERROR
