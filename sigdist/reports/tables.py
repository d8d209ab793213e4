"""The one table writer of the reports: markdown (result pages, MLflow) or aligned text (what a
study prints)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def table(header: Sequence[str], rows: Sequence[Sequence[Any]], *, markdown: bool = False
          ) -> str:
    """``rows`` under ``header``; cells are shown as ``str`` gives them (format them first)."""
    cells = [[str(cell) for cell in row] for row in rows]
    if markdown:
        return "\n".join(["| " + " | ".join(header) + " |", "|" + " --- |" * len(header),
                          *("| " + " | ".join(row) + " |" for row in cells)])
    # a list: with no rows, max() of one int would raise
    widths = [max([len(title), *(len(row[i]) for row in cells)])
              for i, title in enumerate(header)]
    return "\n".join(" ".join(f"{cell:>{width}}" for cell, width in zip(row, widths, strict=True))
                     for row in [list(header), *cells])


__all__ = ["table"]
