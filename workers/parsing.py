"""How the command line's parser speaks: usage errors in one line, like every other failure;
each command's help in one line, and opening its own `--help`; `--version` read only when
asked for. Standard library only, so `--help` answers at once."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any, NoReturn


def version() -> str:
    import importlib.metadata  # only for --version: reading package metadata takes a while

    try:
        return importlib.metadata.version("voucherhook")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed)"


class Commands(argparse._SubParsersAction):  # type: ignore[type-arg]
    """Subcommands whose `--help` opens with their one-line help, when they have no longer
    description."""

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        line = kwargs.get("help")
        if line and "description" not in kwargs:
            kwargs["description"] = f"{line[0].upper()}{line[1:]}."
        parser: argparse.ArgumentParser = super().add_parser(name, **kwargs)
        return parser


class Formatter(argparse.HelpFormatter):
    """The commands' help starts after the longest name (forget-customer), so that each one is
    a single line on an 80-column terminal."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=24)

    def add_argument(self, action: argparse.Action) -> None:
        super().add_argument(action)
        # argparse measures the commands' names one indent short of where it prints them.
        if isinstance(action, argparse._SubParsersAction) and action.help != argparse.SUPPRESS:
            names = [len(self._format_action_invocation(a)) for a in action._get_subactions()]
            indent = self._current_indent + self._indent_increment
            self._action_max_length = max(self._action_max_length, max(names, default=0) + indent)


class Version(argparse.Action):
    """--version, looked up only when asked for (reading package metadata takes a while)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, help=str(kwargs.get("help")))

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
        print(f"voucherhook {version()}")
        parser.exit(0)


class Parser(argparse.ArgumentParser):
    """Usage errors in one line, like every other failure; each command's help on its line."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"voucherhook: {message} (see `{self.prog} --help`)\n")
