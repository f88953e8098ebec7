"""Serving a stand-in from ``python -m <stand-in>``: the socket, the ready line, the exit status.

The rules every stand-in's command line keeps: a port that cannot be bound is ONE line on stderr
and exit status 2 (never a traceback); the ready line is printed once the socket is served (a
script waits for it); SIGINT and SIGTERM stop it cleanly with exit status 0 (``web.run_app``
handles both: it stops accepting, finishes in-flight requests and runs the cleanup contexts).
"""

from __future__ import annotations

import errno
import socket
import sys
from collections.abc import Callable
from typing import Protocol, TypeVar

from aiohttp import web
from pydantic import ValidationError


class KeepsADatabase(Protocol):
    @property
    def db(self) -> str: ...


S = TypeVar("S", bound=KeepsADatabase)


def listening_socket(prog: str, host: str, port: int) -> socket.socket | str:
    """A socket bound and listening on ``host:port``, or the one line saying why not."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, backlog=128)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return f"{prog}: port {port} is already in use (try --port 0 or another port)"
        return f"{prog}: cannot listen on {host}:{port}: {exc.strerror or exc}"


def serve(
    prog: str,
    host: str,
    port: int,
    make_app: Callable[[], web.Application],
    ready_line: Callable[[web.Application, int], str],
    *,
    shutdown_timeout: float = 2.0,
) -> int:
    """Bind ``host:port``, then serve ``make_app()`` until SIGINT or SIGTERM; the exit status.

    The app is made only once the port is bound, so a busy port costs nothing. ``ready_line(app,
    bound_port)`` is the one line printed on stdout when serving starts (it replaces aiohttp's
    two-line banner).
    """
    sock = listening_socket(prog, host, port)
    if isinstance(sock, str):
        print(sock, file=sys.stderr)
        return 2
    app = make_app()
    line = ready_line(app, sock.getsockname()[1])
    web.run_app(
        app,
        sock=sock,
        print=lambda _: print(line, flush=True),
        access_log=None,
        shutdown_timeout=shutdown_timeout,
    )
    return 0


def serve_settings(
    prog: str,
    host: str,
    port: int,
    make_settings: Callable[[], S],
    make_app: Callable[[S], web.Application],
    *,
    db_shown: Callable[[S], str] | None = None,
    shutdown_timeout: float = 2.0,
) -> int:
    """``serve`` for a stand-in that keeps a database, once its settings are built.

    Invalid settings are ``<prog>: invalid settings:`` and pydantic's account on stderr, exit
    status 2; the ready line is ``<prog> listening on http://<host>:<port> (db: <db>)``, where
    ``db_shown(settings)`` may say more than the settings' ``db``.
    """
    try:
        settings = make_settings()
    except ValidationError as error:
        print(f"{prog}: invalid settings:\n{error}", file=sys.stderr)
        return 2
    where = settings.db if db_shown is None else db_shown(settings)
    return serve(
        prog,
        host,
        port,
        lambda: make_app(settings),
        lambda _, bound: f"{prog} listening on http://{host}:{bound} (db: {where})",
        shutdown_timeout=shutdown_timeout,
    )
