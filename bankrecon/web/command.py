"""``bankrecon web``: serve the page; ``web add-user NAME --role ROLE`` and ``web remove-user NAME``."""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TextIO

import uvicorn
from sqlalchemy import Engine

from bankrecon.config import Settings
from bankrecon.web.users import Role, UsersFileError, add_user, read_users, remove_user

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8700
Database = Callable[[Settings], AbstractContextManager[Engine]]


def _users_file(settings: Settings) -> Path:
    if settings.web_users_file is None:
        raise UsersFileError("WEB_USERS_FILE is not set: the file of the web page's users (docs/web.md)")
    return settings.web_users_file


def _passwords(prompt: str) -> Iterator[str]:
    """From the terminal without echo; from standard input line by line when it is not a terminal."""
    if sys.stdin.isatty():
        while True:
            yield getpass.getpass(prompt)
    for line in sys.stdin:
        yield line.rstrip("\r\n")


def add_user_command(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    path = _users_file(settings)
    passwords = _passwords("password: ")
    first, again = next(passwords, None), next(passwords, None)
    if first is None or again is None:
        raise UsersFileError("the password was not given twice")
    if first != again:
        raise UsersFileError("the two passwords differ; nothing changed")
    new = add_user(path, args.name, first, Role[args.role])
    out.write(f"{'added' if new else 'updated'} {args.name} ({args.role}) in {path}\n")
    return 0


def remove_user_command(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    path = _users_file(settings)
    remove_user(path, args.name)
    out.write(f"removed {args.name} from {path}; their sessions end at their next request\n")
    return 0


async def serve_command(args: argparse.Namespace, settings: Settings, out: TextIO, database: Database) -> int:
    from bankrecon.web.app import create_app  # the server's imports only where it runs

    path = _users_file(settings)
    if not read_users(path):
        raise UsersFileError(f"WEB_USERS_FILE {path} lists no user: bankrecon web add-user NAME --role ROLE")
    with database(settings) as engine:
        app = create_app(settings, engine)
        out.write(f"bankrecon web on http://{args.host}:{args.port}/ ({len(read_users(path))} users)\n")
        out.flush()
        # Behind a TLS proxy on this host, its X-Forwarded-Proto marks the cookies Secure.
        server = uvicorn.Server(
            uvicorn.Config(app, host=args.host, port=args.port, proxy_headers=True, log_level="info")
        )
        await server.serve()
    return 0


def add_web_arguments(web: argparse.ArgumentParser) -> None:
    web.add_argument("--host", default=DEFAULT_HOST, help="address to listen on (default: %(default)s)")
    web.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (default: %(default)s)")
    actions = web.add_subparsers(metavar="ACTION", required=False)
    add = actions.add_parser("add-user", help="add a user (or give one a new password and role)")
    add.add_argument("name", metavar="NAME")
    add.add_argument("--role", required=True, choices=list(Role.__members__))
    add.set_defaults(web_action=add_user_command)
    remove = actions.add_parser("remove-user", help="remove a user")
    remove.add_argument("name", metavar="NAME")
    remove.set_defaults(web_action=remove_user_command)
