"""The web page's users: a TOML file (``WEB_USERS_FILE``) of names, Argon2 hashes and roles.

[[user]]
name = "li.na"
password_hash = "$argon2id$v=19$..."
role = "accountant"     # viewer: reads; accountant: also acts on exceptions; operator: also re-runs
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

import tomli_w
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}"
MIN_PASSWORD_CHARS = 10
_HASHER = PasswordHasher()
# Checked against when the name is unknown, so a wrong name costs as long as a wrong password.
_UNKNOWN_USER_HASH = _HASHER.hash("no such user")


class Role(IntEnum):
    """Each role may do what the ones below it may."""

    viewer = 1
    accountant = 2
    operator = 3


class UsersFileError(Exception):
    """WEB_USERS_FILE cannot be read or a change to it cannot be made; the message says why."""


@dataclass(frozen=True)
class User:
    name: str
    password_hash: str
    role: Role


def _parse_role(text: object, where: str) -> Role:
    if not isinstance(text, str) or text not in Role.__members__:
        raise UsersFileError(f"{where}: role must be one of {', '.join(Role.__members__)}")
    return Role[text]


def read_users(path: Path) -> dict[str, User]:
    """The file's users by name; an absent file has none."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise UsersFileError(f"cannot read WEB_USERS_FILE {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsersFileError(f"WEB_USERS_FILE {path} is not TOML: {exc}") from None
    users: dict[str, User] = {}
    for position, entry in enumerate(raw.get("user", []), start=1):
        where = f"WEB_USERS_FILE {path}: user {position}"
        name, password_hash = entry.get("name"), entry.get("password_hash")
        if not isinstance(name, str) or not re.fullmatch(NAME_PATTERN, name):
            raise UsersFileError(f"{where}: name must match {NAME_PATTERN}")
        if not isinstance(password_hash, str) or not password_hash.startswith("$argon2"):
            raise UsersFileError(f"{where}: password_hash must be an Argon2 hash (bankrecon web add-user)")
        if name in users:
            raise UsersFileError(f"{where}: {name} is listed twice")
        users[name] = User(name, password_hash, _parse_role(entry.get("role"), where))
    return users


def _write_users(path: Path, users: dict[str, User]) -> None:
    """Replace the file whole (a reader never sees half of it), readable by its owner only."""
    document = {
        "user": [
            {"name": u.name, "password_hash": u.password_hash, "role": u.role.name} for u in users.values()
        ]
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        tomli_w.dump(document, file)
    partial.replace(path)


def add_user(path: Path, name: str, password: str, role: Role) -> bool:
    """Add the user, or give an existing one this password and role; True if the name is new."""
    if not re.fullmatch(NAME_PATTERN, name):
        raise UsersFileError(f"not a user name ({NAME_PATTERN}): {name!r}")
    if len(password) < MIN_PASSWORD_CHARS:
        raise UsersFileError(f"the password is shorter than {MIN_PASSWORD_CHARS} characters")
    users = read_users(path)
    new = name not in users
    users[name] = User(name, _HASHER.hash(password), role)
    _write_users(path, users)
    return new


def remove_user(path: Path, name: str) -> None:
    users = read_users(path)
    if users.pop(name, None) is None:
        raise UsersFileError(f"no user {name!r} in WEB_USERS_FILE {path}")
    _write_users(path, users)


def authenticate(users: dict[str, User], name: str, password: str) -> User | None:
    """The user if the password is theirs; None for a wrong name and a wrong password alike."""
    user = users.get(name)
    try:
        _HASHER.verify(user.password_hash if user else _UNKNOWN_USER_HASH, password)
    except (VerificationError, InvalidHashError):
        return None
    return user
