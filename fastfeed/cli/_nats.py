"""The NATS connection options shared by ``fastfeed publish`` and ``fastfeed archive``: one
argument group, and one place that turns the parsed flags into the keywords of
:func:`fastfeed.bus.nats_options` (secrets from the environment, never the command line)."""

from __future__ import annotations

import argparse
import os
import ssl
from typing import Any

from .exitcodes import UsageError

#: The environment variables the secrets are read from.
PASSWORD_ENV = "FASTFEED_NATS_PASSWORD"
TOKEN_ENV = "FASTFEED_NATS_TOKEN"

NATS_HELP = f"""\
credentials: --creds FILE, --user NAME with the password in ${PASSWORD_ENV}, or a
token in ${TOKEN_ENV} (secrets are read from the environment, never from the
command line); TLS with a tls:// URL and --tls-ca / --tls-cert / --tls-key."""


def _nats_url(text: str) -> str:
    if not text.startswith(("nats://", "tls://")):
        raise argparse.ArgumentTypeError(f"not a NATS URL: {text.split('@')[-1]!r} (nats://HOST:PORT)")
    return text


def nats_args(p: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """Add the group "NATS connection": ``--nats URL`` (required), ``--creds``, ``--user``,
    ``--tls-ca``, ``--tls-cert``, ``--tls-key``."""
    g = p.add_argument_group("NATS connection")
    g.add_argument(
        "--nats",
        type=_nats_url,
        required=True,
        metavar="URL",
        help="NATS server (nats://HOST:PORT, tls://HOST:PORT)",
    )
    g.add_argument("--creds", default=None, metavar="FILE", help="NATS .creds file")
    g.add_argument("--user", default=None, help=f"NATS user (password in ${PASSWORD_ENV})")
    g.add_argument("--tls-ca", default=None, metavar="FILE", help="CA bundle for a tls:// server")
    g.add_argument("--tls-cert", default=None, metavar="FILE", help="client certificate (with --tls-key)")
    g.add_argument("--tls-key", default=None, metavar="FILE", help="client key")
    return g


def nats_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The security keywords of :func:`fastfeed.bus.nats_options` (``NatsSink``,
    ``archive``) from the parsed flags and the environment. TLS files are given as paths
    (so a sink still pickles into shard processes) after a check that they load:
    ``UsageError`` otherwise, and for ``--tls-key`` without ``--tls-cert``."""
    if args.tls_key and not args.tls_cert:
        raise UsageError("--tls-key needs --tls-cert")
    if args.tls_ca or args.tls_cert:
        try:
            ctx = ssl.create_default_context(cafile=args.tls_ca)
            if args.tls_cert:
                ctx.load_cert_chain(args.tls_cert, args.tls_key)
        except (OSError, ssl.SSLError) as exc:
            raise UsageError(f"TLS files: {exc}") from None
    return {
        "creds": args.creds,
        "user": args.user,
        "password": os.environ.get(PASSWORD_ENV) or None,
        "token": os.environ.get(TOKEN_ENV) or None,
        "tls_ca": args.tls_ca,
        "tls_cert": args.tls_cert,
        "tls_key": args.tls_key,
    }
