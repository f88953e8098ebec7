"""``python run.py [sync] [command]``: run a sync, drain it once, look at its state, and the
development tools (demo, bench).

Without a sync, the commands are the default sync's (BigChat → OurAPI); without a command, a
sync runs: ``python run.py`` runs BigChat → OurAPI, ``python run.py tracos --once`` drains
TracOS ⇄ ERP files once."""

from __future__ import annotations

import signal
import sys
from collections.abc import Sequence
from typing import Any

import click

from .core.commands import common_commands
from .core.shell import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK
from .core.sync import Sync
from .syncs import DEFAULT, SYNCS, load, sync

PROG = "python run.py"

DEV_TOOLS = {
    "demo": "devtools.demo:command",
    "bench": "devtools.bench.cli:command",
}
"""Development tools, imported only when asked for: the worker itself never loads the
stand-ins they start."""

EPILOG = "Exit status: 0 done or stopped cleanly, 1 failed, 2 bad configuration."


def _runs_by_default(args: list[str], commands: Sequence[str]) -> list[str]:
    """No command (nothing, or flags first) means ``run``: ``python run.py --once``."""
    if not args or (args[0].startswith("-") and args[0] not in ("-h", "--help")):
        return ["run", *args]
    return args


class SyncGroup(click.Group):
    """One sync's commands: run (the default), status, dead-letters, and its own."""

    def __init__(self, sync: Sync[Any]) -> None:
        super().__init__(
            sync.name,
            short_help=sync.summary,
            help=f"The {sync.name} sync: {sync.summary}. Without a command it runs.",
            epilog=EPILOG,
        )
        for command in (*common_commands(sync), *sync.commands):
            self.add_command(command)
        self.dev_commands = dict(sync.dev_commands)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*self.commands, *self.dev_commands]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.dev_commands:
            command: click.Command = load(self.dev_commands[name])
            return command
        return self.commands.get(name)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, _runs_by_default(args, list(self.commands)))


class Cli(click.Group):
    """The syncs as groups; the default sync's commands and the dev tools at the top."""

    def __init__(self) -> None:
        super().__init__(
            "run.py",
            help="Integration worker: keeps systems in step, one sync per command group. "
            "Without a sync, the commands are BigChat → OurAPI's; without a command, it runs.",
            epilog=EPILOG,
        )
        self.default = SyncGroup(sync(DEFAULT))
        self.syncs: dict[str, SyncGroup] = {DEFAULT: self.default}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*self.default.commands, *DEV_TOOLS, *SYNCS]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in SYNCS:
            if name not in self.syncs:
                self.syncs[name] = SyncGroup(sync(name))
            return self.syncs[name]
        if name in DEV_TOOLS:
            command: click.Command = load(DEV_TOOLS[name])
            return command
        return self.default.commands.get(name)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, _runs_by_default(args, self.list_commands(ctx)))


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        Cli().main(args=args, prog_name=prog, standalone_mode=False)
    except click.UsageError as exc:
        # One line naming the command's --help, not a screen of usage (a command with every
        # setting as a flag has a usage many lines long).
        where = exc.ctx.command_path if exc.ctx is not None else prog
        print(f"{where}: {exc.format_message()} (see {where} --help)", file=sys.stderr)
        return EXIT_CONFIG
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.Abort:
        return EXIT_FAILURE
    except click.ClickException as exc:
        print(f"{prog}: {exc.format_message()}", file=sys.stderr)
        return EXIT_CONFIG
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_FAILURE
    return EXIT_OK


def run() -> None:
    """The ``integration-worker`` console script (``pip install .``): ``python run.py``'s twin."""
    # Until the worker installs its own handlers, SIGTERM means "stop": nothing has started yet,
    # so exiting is a clean stop (a supervisor stopping us during start-up must not see a crash).
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    sys.exit(main(prog="integration-worker"))
