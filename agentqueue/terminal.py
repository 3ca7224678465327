"""Tables and panels on stdout: nothing is ever cut short (ids, models, costs, error codes).

In a terminal, tables fit its width by folding long cells onto more lines; with `--wide`,
or when stdout is a pipe or a file, they print at their natural width, one row per line, so
an id can be copied or grepped whole.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click
from rich import box
from rich.console import Console, RenderableType
from rich.table import Table

F = TypeVar("F", bound=Callable[..., Any])
_MEASURE_WIDTH = 10_000
MIN_WIDTH = 80


def wide_option(command: F) -> F:
    """`--wide`: print tables at full width instead of folding them to the terminal."""
    return click.option(
        "--wide",
        is_flag=True,
        help="Print tables at full width (one line per row) instead of fitting the terminal.",
    )(command)


def new_table(*headers: str, title: str | None = None, numeric: tuple[str, ...] = ()) -> Table:
    """A table whose cells fold rather than end in an ellipsis; `numeric` headers align right
    and never fold (a folded "$0.0029" would read as "$0.00")."""
    table = Table(
        box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, title=title, title_justify="left"
    )
    for header in headers:
        number = header in numeric
        table.add_column(
            header, overflow="fold", justify="right" if number else "left", no_wrap=number
        )
    return table


def emit(
    *renderables: RenderableType | str, wide: bool = False, max_width: int | None = None
) -> None:
    """Print to stdout, in the terminal's width unless `wide` or stdout is not a terminal;
    `max_width` caps the natural width off a terminal (a panel of long text need not be one
    line per paragraph)."""
    # No markup: cells hold ids, models, messages and bars like "[###--]", never rich markup.
    console = Console(highlight=False, markup=False)
    if wide or not console.is_terminal:
        measurer = Console(width=_MEASURE_WIDTH, highlight=False, markup=False)
        needed = max(measurer.measure(item).maximum for item in renderables) if renderables else 0
        if max_width is not None and not wide:
            needed = min(needed, max_width)
        console = Console(width=max(needed, MIN_WIDTH), highlight=False, markup=False)
    with console.capture() as captured:
        for item in renderables:
            console.print(item)
    # Rich pads every cell to its column; trailing blanks only get in the way of copying.
    click.echo("\n".join(line.rstrip() for line in captured.get().splitlines()))
