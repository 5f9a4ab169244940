"""The edge of `tether` and `tetherd`: every error ends as one line on stderr and a documented exit code.

It lives in the agent, whose install every install includes, so that `shared/` (the wire contract) needs no click.

Exit codes shared by both commands (docs/cli.md): 1 an error of the environment or the request (a path that cannot be
used, a controller that refused), 2 bad usage, 70 a bug (an exception nobody expected; set TETHER_DEBUG=1 to see its
traceback), 130 interrupted. Commands add their own (3 for an operation that did not succeed, 78 for a bad agent
config).
"""

import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import click
from click.exceptions import NoArgsIsHelpError

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_BUG = 70
"""EX_SOFTWARE from sysexits.h."""
EXIT_INTERRUPTED = 130
DEBUG_ENV = "TETHER_DEBUG"
"""Set to anything but empty or 0, an unexpected exception is raised with its traceback instead of summed up."""


def one_line(text: str) -> str:
    """`text` with its line breaks and runs of blanks made single spaces."""
    return " ".join(text.split())


def describe(err: BaseException) -> str:
    """An expected error as a person reads it: an OSError as `path: reason`, rather than `[Errno 20] ...: 'path'`."""
    if isinstance(err, OSError) and err.strerror:
        return f"{err.filename}: {err.strerror}" if err.filename is not None else err.strerror
    return str(err) or type(err).__name__


def first_leaf(error: BaseException) -> BaseException:
    """The first exception in an exception group (a task group's), however deep; any other exception itself."""
    return first_leaf(error.exceptions[0]) if isinstance(error, BaseExceptionGroup) else error


def _debugging() -> bool:
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


def _where(err: BaseException) -> str:
    """The innermost frame an exception was raised in, as `file:line`: enough to find a bug reported in one line."""
    frames = traceback.extract_tb(err.__traceback__)
    return f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""


class OneLineGroup(click.Group):
    """A click group whose usage errors, expected errors and bugs each end as one `<name>: error: ...` line.

    `expected` are the errors a user's input or environment can cause (a path under a file, a refused request): their
    message is the line, with the exit code given for their type. Anything else is a bug: one line naming it and
    where it was raised, exit 70, and the traceback with TETHER_DEBUG=1.
    """

    expected: tuple[tuple[type[BaseException], int], ...] = ((OSError, EXIT_ERROR),)
    """Each expected error type and its exit code; the first that matches counts."""

    def main(  # it never returns: it always exits
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> NoReturn:
        try:
            # Not standalone: click would print a usage error in four lines and an unexpected one with a traceback.
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except NoArgsIsHelpError as err:  # a bare `tether` or `tether op`: the help, as click shows it
            err.show()
            sys.exit(err.exit_code)
        except click.UsageError as err:
            hint = f" (see '{err.ctx.command_path} --help')" if err.ctx is not None else ""
            self._exit_with(f"{err.format_message()}{hint}", err.exit_code)
        except click.ClickException as err:
            self._exit_with(err.format_message(), err.exit_code)
        except click.Abort:  # click's form of KeyboardInterrupt (and of EOF at a prompt)
            sys.exit(EXIT_INTERRUPTED)
        except Exception as raised:
            failed = first_leaf(raised)  # what failed in a task group, rather than the group
            for kind, exit_code in self.expected:
                if isinstance(failed, kind):
                    self._exit_with(describe(failed), exit_code)
            if _debugging():
                raise
            self._exit_with(
                f"unexpected {type(failed).__name__}: {describe(failed)}{_where(failed)} "
                f"(a bug; rerun with {DEBUG_ENV}=1 for the traceback)",
                EXIT_BUG,
            )
        # With --help, or a command that returned, click hands back an exit code (or the command's None).
        sys.exit(code if isinstance(code, int) else 0)

    def _exit_with(self, message: str, code: int) -> NoReturn:
        click.echo(f"{self.name}: error: {one_line(message)}", err=True)
        sys.exit(code)


# Callbacks of click options that are checked before a command runs, rather than when it fails after a while.


def directories_or_missing(_: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    """A file's path whose existing ancestors are all directories; the missing ones are made when it is opened. One
    that is a file is refused as bad usage, before anything starts."""
    if value is None:
        return None
    for ancestor in value.absolute().parents:
        if ancestor.exists():
            if not ancestor.is_dir():
                raise click.BadParameter(f"{ancestor} is not a directory", param=param)
            break
    return value


def not_blank(_: click.Context, param: click.Parameter, value: str) -> str:
    """A value with something in it besides blanks."""
    if not value.strip():
        raise click.BadParameter("must not be empty", param=param)
    return value


def in_an_existing_directory(_: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    """A file's path in a directory that exists and may be written: checked at start, not when the file is written
    after a whole run."""
    if value is None:
        return None
    parent = value.absolute().parent
    if not parent.is_dir():
        raise click.BadParameter(
            f"{parent} is not a directory" if parent.exists() else f"{parent} does not exist", param=param
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise click.BadParameter(f"cannot write in {parent}", param=param)
    return value


log_format_option = click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="json: one object per line, with the operation and command ids of the lines about them.",
)
