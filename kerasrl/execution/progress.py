"""The progress display of `Runner.run` and `agent.fit`.

On a terminal, a `rich` progress bar that fits 80 columns: the description,
a bar, the count (`53,211/100,000 timesteps`), elapsed and remaining time,
then the statistics (mean return, steps/s, episode length, share of time in
the agent), which are cut with an ellipsis first when the terminal is
narrow. Without a terminal (CI logs, `nohup`, a pipe), one plain line every
`interval` seconds (default 10, or `$KERASRL_PROGRESS_SECONDS`) and one at
the end, e.g.

    train 53,211/100,000 timesteps (53%)  0:00:09 elapsed  return 187.3  5,697 steps/s

so a log shows progress without control characters.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import TextIO

from kerasrl.errors import ArgumentError

#: Seconds between two plain lines when the output is not a terminal.
DEFAULT_INTERVAL = 10.0


def _interval() -> float:
    text = os.environ.get("KERASRL_PROGRESS_SECONDS")
    if text is None:
        return DEFAULT_INTERVAL
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ArgumentError.invalid("$KERASRL_PROGRESS_SECONDS", "a number of seconds > 0", text)
    return value


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Progress:
    """A progress display: a bar on a terminal, plain lines otherwise, nothing when disabled.

    Args:
        enabled: Show anything at all.
        total: The count at which the run ends (None: unknown).
        unit: What is counted (`'timesteps'`, `'episodes'`, `'updates'`).
        description: The first word (`'train'`, `'evaluate'`).
        file: Where to write (default `sys.stdout`).
        terminal: Force the bar (True) or plain lines (False); default:
            whether `file` is a terminal, as `rich` decides.
    """

    def __init__(self, enabled: bool, total: int | None, unit: str, description: str,
                 file: TextIO | None = None, terminal: bool | None = None):
        self.enabled = enabled
        self._last = 0.0
        if not enabled:
            return
        from rich.console import Console

        self._file = file or sys.stdout
        console = Console(file=self._file, force_terminal=terminal)
        self.terminal = console.is_terminal if terminal is None else terminal
        self._total, self._unit, self._description = total, unit, description
        self._start = time.perf_counter()
        if not self.terminal:
            self._every = _interval()
            self._last = self._start
            return
        self._every = 0.2
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as RichProgress
        from rich.table import Column

        def fixed(width: int) -> Column:  # never narrowed: only the statistics give way
            return Column(min_width=width, no_wrap=True)

        count = 2 * len(str(total or 0)) + 1
        self.progress = RichProgress(
            TextColumn("[bold]{task.description}", table_column=fixed(len(description))),
            BarColumn(bar_width=10, table_column=fixed(10)),
            MofNCompleteColumn(separator="/", table_column=fixed(count)),
            TextColumn(unit, table_column=fixed(len(unit))),
            TimeElapsedColumn(table_column=fixed(7)),
            TimeRemainingColumn(compact=True, table_column=fixed(5)),
            TextColumn("{task.fields[stats]}",
                       table_column=Column(ratio=1, no_wrap=True, overflow="ellipsis")),
            console=console, refresh_per_second=4, expand=True,
        )
        self.task = self.progress.add_task(description, total=total, stats="")
        self.progress.start()

    def update(self, completed: Callable[[], int], stats: Callable[[], str],
               force: bool = False) -> None:
        """Redraws (a bar at most every 0.2 s, a plain line every interval);
        `completed` and `stats` are called only then."""
        if not self.enabled:
            return
        now = time.perf_counter()
        if not (force or now - self._last > self._every):
            return
        self._last = now
        if self.terminal:
            self.progress.update(self.task, completed=completed(), stats=stats())
            return
        count = completed()
        total = "" if self._total is None else f"/{self._total:,}"
        share = "" if not self._total else f" ({100 * count / self._total:.0f}%)"
        print(f"{self._description} {count:,}{total} {self._unit}{share}  "
              f"{_clock(now - self._start)} elapsed  {stats()}", file=self._file, flush=True)

    def close(self) -> None:
        """Stops the bar (the final state stays on screen)."""
        if self.enabled and self.terminal:
            self.progress.stop()
        self.enabled = False
