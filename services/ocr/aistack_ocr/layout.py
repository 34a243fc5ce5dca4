"""Reading order: engines return lines in whatever order their detector found them.

Lines are grouped into rows (boxes that share most of their height), rows go top to bottom and the
lines of a row left to right. Pieces of a row that sit close together (a detector often splits a line at
word gaps) are merged into one line; pieces further apart (columns, a label and its value far to the
right) stay separate lines. A page's text is its rows, one per line of text, the lines of a row joined
by a space. Multi-column layouts read across the columns, row by row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aistack_ocr.engine import EngineLine

PAGE_SEPARATOR = "\n\n"
# Pieces of a row closer than this many line heights are one line.
MERGE_GAP = 1.0


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
    return [_merge_close(sorted(row, key=lambda b: b.left)) for row in rows]


def _merge_close(row: list[_Box]) -> list[EngineLine]:
    groups: list[list[_Box]] = []
    for box in row:
        if groups:
            previous = groups[-1]
            right = max(max(x for x, _ in b.line.polygon) for b in previous)
            height = min(box.height, max(b.height for b in previous))
            if box.left - right <= MERGE_GAP * height:
                previous.append(box)
                continue
        groups.append([box])
    return [group[0].line if len(group) == 1 else _joined(group) for group in groups]


def _joined(group: list[_Box]) -> EngineLine:
    xs = [x for b in group for x, _ in b.line.polygon]
    ys = [y for b in group for _, y in b.line.polygon]
    left, top, right, bottom = min(xs), min(ys), max(xs), max(ys)
    weights = [max(len(b.line.text), 1) for b in group]
    confidence = sum(b.line.confidence * w for b, w in zip(group, weights, strict=True)) / sum(weights)
    return EngineLine(
        text=" ".join(b.line.text for b in group),
        confidence=confidence,
        polygon=((left, top), (right, top), (right, bottom), (left, bottom)),
    )


def page_text(rows: Sequence[Sequence[EngineLine]]) -> str:
    return "\n".join(" ".join(line.text for line in row) for row in rows)


def document_text(page_texts: Sequence[str]) -> str:
    return PAGE_SEPARATOR.join(page_texts)
