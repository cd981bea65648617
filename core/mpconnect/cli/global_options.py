"""The top-level options, accepted before and after the subcommand.

``mpconnect run billing --config f.toml`` means ``mpconnect --config f.toml run billing``:
:func:`hoist_global_options` moves every global option found after the subcommand to the
front before click parses the line. Everything after ``--`` is left alone.
"""

from __future__ import annotations

from collections.abc import Sequence

#: Global options that take a value, by every spelling.
VALUE_OPTIONS = frozenset({"--config", "--home", "--log-format"})
#: Global flags, by every spelling.
FLAG_OPTIONS = frozenset({"--quiet", "-q", "--debug", "--verbose", "-v"})


def hoist_global_options(args: Sequence[str]) -> list[str]:
    """Return ``args`` with the global options (and their values) moved to the front.

    Options before the first positional argument (the subcommand) stay where they are;
    a value option without its value is moved alone, so click reports it.
    """
    args = list(args)
    start = _first_positional(args)
    if start is None:
        return args
    front, rest = args[:start], args[start:]
    hoisted: list[str] = []
    kept: list[str] = []
    index = 0
    while index < len(rest):
        arg = rest[index]
        if arg == "--":
            kept.extend(rest[index:])
            break
        name = arg.split("=", 1)[0]
        if name in VALUE_OPTIONS:
            hoisted.append(arg)
            if "=" not in arg and index + 1 < len(rest):
                hoisted.append(rest[index + 1])
                index += 1
        elif arg in FLAG_OPTIONS:
            hoisted.append(arg)
        else:
            kept.append(arg)
        index += 1
    return [*front, *hoisted, *kept]


def _first_positional(args: list[str]) -> int | None:
    """Index of the subcommand's name: the first argument that is not a global option."""
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "--":
            return None
        if arg in VALUE_OPTIONS:
            index += 2
            continue
        if not arg.startswith("-"):
            return index
        index += 1
    return None
