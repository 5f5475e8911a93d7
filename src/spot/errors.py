"""The one kind of error a user can fix, and the one way an entry point reports it.

Anything the user can correct (a config value, a path, a malformed row, a model that will not load) is raised
as a `UserError` whose message names the key, file:line or field. Entry points catch it and end with one line
on stderr and exit status 2 (`exit_with`); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys


class UserError(ValueError):
    """Input the user must fix; the message says what and where."""


class ConfigError(UserError):
    """A config value out of its type or range; the message names the key."""


class DataError(UserError):
    """A data file or row that cannot be used; the message names the file, line and field."""


def exit_with(error: BaseException) -> None:
    """One line on stderr, exit status 2: the style of every entry point."""
    print(f"error: {error}", file=sys.stderr)
    sys.exit(2)


def check_type(value, types: type | tuple[type, ...], key: str) -> None:
    """Raise ConfigError unless `value` is of `types` (a bool is not a number here)."""
    if isinstance(value, bool) or not isinstance(value, types):
        names = " or ".join(t.__name__ for t in (types if isinstance(types, tuple) else (types,)))
        raise ConfigError(f"{key}: must be {'an' if names[0] in 'aeiou' else 'a'} {names}, got {value!r}")


def check(ok: bool, key: str, message: str) -> None:
    """Raise ConfigError('<key>: <message>') unless `ok`: typed configs check their ranges with this."""
    if not ok:
        raise ConfigError(f"{key}: {message}")
