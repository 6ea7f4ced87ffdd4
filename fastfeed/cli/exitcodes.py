"""Exit statuses of the ``fastfeed`` command, in one place, and the exceptions that carry them.

====  ======================================================================================
0     success; also Ctrl-C in ``demo``, ``watch``, ``record``, ``exchange``, ``publish`` and
      ``archive`` (Ctrl-C is the normal way to stop them: they print their summary)
1     other runtime error (a port in use, a subscription refused, ``export --symbols``
      matching nothing in the capture, missed bench targets)
2     bad arguments (also: an optional dependency the asked-for output needs is missing)
3     connection failure (unreachable endpoint, handshake or authentication refused)
4     bad file (missing, unreadable, not a capture, corrupt; output that may not be overwritten)
130   Ctrl-C during ``replay``, ``export`` or ``bench``
====  ======================================================================================

A command signals an expected failure by raising a :class:`CommandError` subclass; ``main``
prints it as one line on stderr (``fastfeed CMD: error: ...``) and returns its ``code``.
"""

from __future__ import annotations

__all__ = [
    "EXIT_CONNECT",
    "EXIT_ERROR",
    "EXIT_FILE",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_STATUS_HELP",
    "EXIT_USAGE",
    "CommandError",
    "ConnectError",
    "FileError",
    "UsageError",
]

EXIT_OK = 0
EXIT_ERROR = 1  #: any other runtime error
EXIT_USAGE = 2  #: bad arguments (or a missing optional dependency for the asked-for output)
EXIT_CONNECT = 3  #: could not connect / handshake / authenticate
EXIT_FILE = 4  #: missing, unreadable, corrupt or not-a-capture file; output that may not be overwritten
EXIT_INTERRUPTED = 130  #: Ctrl-C during replay, export or bench

#: the "exit status" section of ``fastfeed --help``
EXIT_STATUS_HELP = f"""\
exit status:
  {EXIT_OK:<4} success; also Ctrl-C in demo, watch, record, exchange, publish and archive
       (the summary is printed)
  {EXIT_ERROR:<4} other runtime error (a port in use, a subscription refused, export --symbols matching
       nothing in the capture, missed bench targets)
  {EXIT_USAGE:<4} bad arguments (also: an optional dependency the output needs is missing)
  {EXIT_CONNECT:<4} connection failure (unreachable endpoint, handshake or authentication refused)
  {EXIT_FILE:<4} bad file (missing, unreadable, not a capture, corrupt; record output exists,
       archive -o not a directory)
  {EXIT_INTERRUPTED:<4} Ctrl-C during replay, export or bench (replay prints its partial summary)
"""


class CommandError(Exception):
    """An expected failure: one line on stderr and exit status ``code``."""

    code = EXIT_ERROR

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class UsageError(CommandError):
    """Bad command-line arguments (exit status 2)."""

    code = EXIT_USAGE


class ConnectError(CommandError):
    """Could not connect, complete the handshake or authenticate (exit status 3)."""

    code = EXIT_CONNECT


class FileError(CommandError):
    """A missing, unreadable or corrupt file (exit status 4)."""

    code = EXIT_FILE
