"""Reading order: engines return lines in whatever order their detector found them.

Lines are grouped into rows (boxes that share most of their height), rows go top to bottom and the
lines of a row left to right. A page's text is its rows, one per line of text, with the pieces of a row
joined by a space. Multi-column layouts read across the columns, row by row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aistack_ocr.engine import EngineLine

PAGE_SEPARATOR = "\n\n"


@dataclass(frozen=True)
class _Box:
    line: EngineLine
    left: float
    top: float
    bottom: float

    @property
    def height(self) -> float:
        return max(self.bottom - self.top, 1.0)

    @property
    def middle(self) -> float:
        return (self.top + self.bottom) / 2


def _box(line: EngineLine) -> _Box:
    xs = [x for x, _ in line.polygon] or [0.0]
    ys = [y for _, y in line.polygon] or [0.0]
    return _Box(line, min(xs), min(ys), max(ys))


def rows_in_reading_order(lines: Sequence[EngineLine]) -> list[list[EngineLine]]:
    """Lines grouped into rows, rows top to bottom, each row left to right."""
    rows: list[list[_Box]] = []
    for box in sorted((_box(line) for line in lines), key=lambda b: (b.middle, b.left)):
        if rows:
            row = rows[-1]
            row_top = min(b.top for b in row)
            row_bottom = max(b.bottom for b in row)
            overlap = min(box.bottom, row_bottom) - max(box.top, row_top)
            # Same row when the vertical overlap covers most of the shorter of the two.
            if overlap >= 0.5 * min(box.height, row_bottom - row_top):
                row.append(box)
                continue
        rows.append([box])
    return [[b.line for b in sorted(row, key=lambda b: b.left)] for row in rows]


def page_text(rows: Sequence[Sequence[EngineLine]]) -> str:
    return "\n".join(" ".join(line.text for line in row) for row in rows)


def document_text(page_texts: Sequence[str]) -> str:
    return PAGE_SEPARATOR.join(page_texts)
