"""The live progress display on a terminal (rich); nothing of it reaches a pipe."""

from __future__ import annotations

import atexit
import logging

from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, Progress, TaskID, TextColumn

from .report import human_bytes


class TerminalProgress:
    """One bar per pass and volume: bytes copied, percent, rate."""

    _shared: TerminalProgress | None = None

    def __init__(self, console: Console | None = None):
        self.console = console or Console(stderr=True)
        self.bars = Progress(
            TextColumn("{task.description:<34}"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TextColumn("{task.fields[done]:>10}"),
            TextColumn("{task.fields[rate]:>12}"),
            console=self.console,
        )
        self.tasks: dict[str, TaskID] = {}
        self.started = False

    @classmethod
    def shared(cls) -> TerminalProgress:
        """The one display of this process; log lines print above its bars."""
        if cls._shared is None:
            cls._shared = cls()
            logger = logging.getLogger("klink_sync")
            for handler in logger.handlers:
                if isinstance(handler, logging.StreamHandler):
                    rich = RichHandler(console=cls._shared.console, show_path=False)
                    rich.setLevel(handler.level)
                    rich.filters = handler.filters
                    logger.removeHandler(handler)
                    logger.addHandler(rich)
            atexit.register(cls._shared.stop)
        return cls._shared

    def __call__(self, what: str, done: int, percent: int, rate: str) -> None:
        if not self.started:
            self.bars.start()
            self.started = True
        task = self.tasks.get(what)
        if task is None:
            task = self.tasks[what] = self.bars.add_task(what, total=100, done="", rate="")
        self.bars.update(task, completed=percent, done=human_bytes(done), rate=rate)

    def stop(self) -> None:
        if self.started:
            self.bars.stop()
            self.started = False
