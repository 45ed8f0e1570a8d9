"""How `registrar` talks back: rich tables for people, `--json` for scripts, and exit codes.

Exit codes (docs/cli.md documents them; scripts rely on them, so they never change meaning):
0 ok · 1 the answer is "no" (verification failed, a rejected upload, the service refused) ·
2 usage or settings error · 3 not found · 4 transient failure (retrying later may help).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import IO, Any

OK = 0
FAILED = 1
USAGE = 2
NOT_FOUND = 3
TRANSIENT = 4


class CliError(Exception):
    """A failure that ends the command with `exit_code`; the message says what to do."""

    def __init__(self, message: str, exit_code: int = FAILED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class Output:
    """Everything the CLI prints goes through here: data to stdout, diagnostics to stderr."""

    def __init__(
        self, *, json_mode: bool, stdout: IO[str] | None = None, stderr: IO[str] | None = None
    ) -> None:
        try:
            from rich.console import Console
        except ModuleNotFoundError:  # installed without the extra: say how to get it
            sys.stderr.write(
                "registrar needs the 'cli' extra: pip install 'gcs-model-registrar[cli]'\n"
            )
            raise SystemExit(USAGE) from None

        self.json_mode = json_mode
        self.out = Console(file=stdout or sys.stdout, highlight=False, soft_wrap=False)
        self.err = Console(file=stderr or sys.stderr, highlight=False, stderr=True)

    def data(self, payload: Any) -> None:
        """The `--json` document: one JSON value on stdout, nothing else there."""
        self.out.file.write(json.dumps(payload, indent=2, sort_keys=True, default=_plain) + "\n")
        self.out.file.flush()

    def table(
        self,
        title: str | None,
        columns: Sequence[str],
        rows: Iterable[Sequence[Any]],
        *,
        caption: str | None = None,
    ) -> None:
        from rich.table import Table

        table = Table(title=title, caption=caption, title_justify="left", expand=False)
        for column in columns:
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*(_cell(value) for value in row))
        self.out.print(table)

    def fields(self, title: str, pairs: Iterable[tuple[str, Any]]) -> None:
        """A two-column key/value table (one object in full)."""
        from rich.table import Table

        table = Table(title=title, title_justify="left", show_header=False, expand=False)
        table.add_column("field", style="bold", no_wrap=True)
        table.add_column("value", overflow="fold")
        for key, value in pairs:
            table.add_row(key, _cell(value))
        self.out.print(table)

    def say(self, message: str) -> None:
        """A line for people: stdout normally, stderr in --json mode (stdout holds the JSON)."""
        (self.err if self.json_mode else self.out).print(message, markup=False)

    def warn(self, message: str) -> None:
        self.err.print(f"warning: {message}", markup=False, style="yellow")

    def error(self, message: str) -> None:
        self.err.print(f"error: {message}", markup=False, style="red")


def _cell(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, (list, tuple, set, frozenset)):
        return ", ".join(str(v) for v in value) or "-"
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True, default=_plain)
    return str(value)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)
