"""The edit distance behind every WER and CER bound in the suite."""

from __future__ import annotations

import pytest
from aistack_kit.testing import edit_distance


@pytest.mark.parametrize(
    ("reference", "hypothesis", "distance"),
    [
        ("", "", 0),
        ("abc", "", 3),
        ("", "abc", 3),
        ("kitten", "sitting", 3),
        ("São Paulo", "Sao Paulo", 1),
        (["bom", "dia"], ["bom", "dia"], 0),
        (["bom", "dia", "senhor"], ["bom", "senhor"], 1),
        (["call", "me", "back"], ["call", "back", "me", "now"], 2),
    ],
)
def test_edit_distance(reference: str | list[str], hypothesis: str | list[str], distance: int) -> None:
    assert edit_distance(reference, hypothesis) == distance
    assert edit_distance(hypothesis, reference) == distance  # symmetric
